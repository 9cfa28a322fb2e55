"""Sentinel: discovery, master_for() (the C client's sentinel topology),
slave_for(). Needs the redis_sentinel fixture (CTest python.sentinel)."""
import asyncio
import os
import socket
import time

import pytest

import aredis
from aredis.sentinel import Sentinel
from conftest import standalone, state
from doc_examples import AS_WRITTEN, EXAMPLES, run


@pytest.fixture
def sent():
    st = state("sentinel")
    if st is None:
        pytest.skip("no sentinel set-up")
    return st


def sentinels(st):
    return [(h, int(p)) for h, p in
            (a.rsplit(":", 1) for a in st["sentinels"].split(","))]


async def test_discovery(sent):
    s = Sentinel(sentinels(sent), stream_timeout=0.5)
    host, port = sent["master"].rsplit(":", 1)
    assert await s.discover_master(sent["service"]) == (host, int(port))
    replicas = await s.discover_slaves(sent["service"])
    assert sorted(replicas) == sorted(
        (h, int(p)) for h, p in (a.rsplit(":", 1)
                                 for a in sent["replicas"].split(",")))
    with pytest.raises(aredis.MasterNotFoundError):
        await s.discover_master("no-such-service")


def _unreachable():
    """Two loopback sentinel addresses: one refuses (nothing listens), one
    never answers (listens, never accepts); and the socket to close."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(1)
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    refused = free.getsockname()[1]
    free.close()
    return [("127.0.0.1", refused), ("127.0.0.1", hung.getsockname()[1])], hung


async def _fails_with(client, cls, text):
    # No stream_timeout: the read must fail by itself, well within 5 s.
    t0 = time.monotonic()
    for _ in range(2):
        with pytest.raises(cls) as info:
            await asyncio.wait_for(client.get("x"), 5)
        assert text in str(info.value)
    assert time.monotonic() - t0 < 5
    client.close()


async def test_no_master_is_master_not_found(sent):
    # The sentinels answer but do not know the service, or none answers:
    # master_for() and slave_for() raise MasterNotFoundError, a
    # ConnectionError, naming the service or the sentinels' errors.
    assert issubclass(aredis.MasterNotFoundError, aredis.ConnectionError)
    s = Sentinel(sentinels(sent))
    for client in (s.master_for("no-such-service"),
                   s.slave_for("no-such-service")):
        await _fails_with(client, aredis.MasterNotFoundError,
                          "no sentinel knows the service 'no-such-service'")
    addrs, hung = _unreachable()
    try:
        s = Sentinel(addrs)
        for client in (s.master_for(sent["service"]),
                       s.slave_for(sent["service"])):
            await _fails_with(client, aredis.MasterNotFoundError,
                              "sentinel discovery failed, 2 sentinels asked")
    finally:
        hung.close()


async def test_master_and_slave_for(sent):
    s = Sentinel(sentinels(sent), stream_timeout=0.5)
    master = s.master_for(sent["service"], stream_timeout=1)
    slave = s.slave_for(sent["service"], stream_timeout=1)
    assert await master.set("sentinel-key", "bar") is True
    info = await master.info("replication")
    assert info["role"] == "master"
    assert (await slave.info("replication"))["role"] == "slave"
    await master.wait(2, 1000)
    assert await slave.get("sentinel-key") == b"bar"


def test_documentation_example(sent):
    st = standalone()
    env = {"AREDIS_EXAMPLE_SENTINEL": sent["sentinels"].split(",")[0],
           "AREDIS_EXAMPLE_PORT": st["port"] if st else "1"}
    result, out = run(os.path.join(EXAMPLES, "fixed", "sentinel.py"), env)
    assert result == "ok", out
    # As written it imports redis-py's blocking Sentinel and awaits it; in
    # the documentation's context it gets ours, and runs.
    result, out = run(os.path.join(EXAMPLES, "docs", "sentinel.py"), env)
    assert result.startswith(AS_WRITTEN["sentinel.py"][0]), out
    result, out = run(os.path.join(EXAMPLES, "docs", "sentinel.py"), env,
                      context=True)
    assert result == "ok", out


async def test_sentinel_commands(sent):
    # The documented sentinel_* methods on a client of a sentinel.
    host, port = sentinels(sent)[0]
    s = aredis.StrictRedis(host=host, port=port)
    service = sent["service"]
    mhost, mport = sent["master"].rsplit(":", 1)
    assert await s.sentinel_get_master_addr_by_name(service) == \
        (mhost, int(mport))
    master = await s.sentinel_master(service)
    assert master["name"] == service and master["port"] == int(mport)
    assert master["is_master"] is True and master["is_sdown"] is False
    assert list(await s.sentinel_masters()) == [service]
    replicas = await s.sentinel_slaves(service)
    assert len(replicas) == len(sent["replicas"].split(","))
    assert all(r["is_slave"] and isinstance(r["port"], int)
               for r in replicas)
    assert len(await s.sentinel_sentinels(service)) == \
        len(sent["sentinels"].split(",")) - 1
    assert await s.sentinel_set(service, "down-after-milliseconds",
                                master["down-after-milliseconds"]) is True
    s.close()
