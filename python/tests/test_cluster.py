"""StrictRedisCluster over the C client's cluster topology. Needs the
redis_cluster fixture (CTest python.cluster)."""
import asyncio
import os

import pytest

import aredis
from conftest import standalone, state
from doc_examples import EXAMPLES, run


@pytest.fixture
def cl():
    st = state("cluster")
    if st is None:
        pytest.skip("no cluster")
    return st


async def test_keys_across_slots(cl):
    c = aredis.StrictRedisCluster(host=cl["host"], port=int(cl["port"]))
    keys = [f"pyk{i}" for i in range(50)]
    await asyncio.gather(*[c.set(k, i) for i, k in enumerate(keys)])
    assert await c.mget(keys) == [str(i).encode() for i in range(50)]
    slots = {await c.cluster_keyslot(k) for k in keys}
    assert len(slots) > 10
    assert await c.delete(*keys) == 50
    slots_map = await c.cluster_slots()
    assert sum(e - s + 1 for s, e in slots_map) == 16384
    assert all(v[0]["server_type"] == "master" for v in slots_map.values())


async def test_pipeline_across_slots(cl):
    c = aredis.StrictRedisCluster(host=cl["host"], port=int(cl["port"]))
    p = c.pipeline()
    for i in range(20):
        p.set(f"pp{i}", i)
        p.get(f"pp{i}")
    res = await p.execute()
    assert res == [x for i in range(20) for x in (True, str(i).encode())]


def test_documentation_example(cl):
    st = standalone()
    env = {"AREDIS_EXAMPLE_CLUSTER": f"{cl['host']}:{cl['port']}",
           "AREDIS_EXAMPLE_PORT": st["port"] if st else "1"}
    for context in (False, True):
        result, out = run(os.path.join(EXAMPLES, "docs", "cluster.py"), env,
                          context=context)
        assert result == "ok", out
        assert "'server_type': 'master'" in out


async def test_commands_to_every_node(cl):
    # INFO, CONFIG GET, TIME, LASTSAVE, ROLE reach every node: one result
    # per "host:port", each in the standalone client's type; PING is True.
    c = aredis.StrictRedisCluster(host=cl["host"], port=int(cl["port"]))
    assert await c.ping() is True
    info = await c.info()
    assert len(info) == 6 and all(":" in node for node in info)
    assert all(isinstance(i["connected_clients"], int)
               for i in info.values())
    assert await c.config_get("maxmemory") == \
        {node: {"maxmemory": "0"} for node in info}
    assert all(isinstance(t, tuple) for t in (await c.time()).values())
    c.set_response_callback("INFO", lambda r: len(r))
    assert all(isinstance(n, int) for n in (await c.info()).values())
    p = c.pipeline(transaction=False)
    p.config_get("maxmemory")
    assert await p.execute() == [{node: {"maxmemory": "0"} for node in info}]
    c.close()



async def test_cluster_lock_waits_on_the_keys_primary(cl):
    # ClusterLock asks the key's primary for its replicas and WAITs there
    # (a cluster client routes neither INFO nor WAIT to one node).
    c = aredis.StrictRedisCluster(host=cl["host"], port=int(cl["port"]))
    acks = []
    c.set_response_callback("WAIT", lambda n: acks.append(n) or n)
    lock = c.lock("pylock", lock_class=aredis.ClusterLock, timeout=2)
    assert await lock.acquire() is True
    assert acks and acks[0] >= 1, "WAIT went to the key's primary"
    assert await c.lock("pylock", blocking_timeout=0.1).acquire() is False
    assert await lock.release() is None
    c.close()


async def test_cluster_scan_iter(cl):
    c = aredis.StrictRedisCluster(host=cl["host"], port=int(cl["port"]))
    keys = {f"scan:{i}".encode() for i in range(100)}
    await asyncio.gather(*[c.set(k, 1) for k in keys])
    await c.set("other", 1)
    found = [k async for k in c.scan_iter(match="scan:*", count=10)]
    assert set(found) == keys
    assert len({await c.cluster_keyslot(k) for k in found}) > 50
    await c.delete(*keys)
    c.close()


async def test_readonly_reads_from_replicas(cl):
    c = aredis.StrictRedisCluster(host=cl["host"], port=int(cl["port"]),
                                  readonly=True)
    await c.set("ro-key", "v")
    await c.ping()

    async def replica_gets():
        total = 0
        for host, port, primary in c.core.nodes(3):
            if not primary:
                stats = await c.core.node_command(host, port, "INFO",
                                                  "commandstats")
                total += stats.get("cmdstat_get", {}).get("calls", 0)
        return total
    before = await replica_gets()
    await asyncio.sleep(0.2)        # the replicas have the key
    for _ in range(20):
        assert await c.get("ro-key") in (b"v", None)
    assert await replica_gets() > before
    c.close()
