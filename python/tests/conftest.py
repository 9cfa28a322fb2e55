"""Fixtures: the servers the project's scripts started (CTest fixtures set
AREDIS_TEST_STATE_DIR; tests/support/redis-server.sh writes NAME.state), and
every test run on the default asyncio loop and on uvloop."""
import asyncio
import os
import subprocess
import threading

import pytest

import aredis


def state(name, d=None):
    d = d or os.environ.get("AREDIS_TEST_STATE_DIR")
    if not d:
        return None
    path = os.path.join(d, f"{name}.state")
    if not os.path.exists(path):
        return None
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            out[k] = v
    return out


SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "..", "..", "tests", "support", "redis-server.sh")


def standalone():
    """The single server of the tests: CTest's Python one (the
    documentation's examples FLUSHALL it), else the shared one."""
    return state("python") or state("standalone")


@pytest.fixture(scope="session")
def server():
    st = standalone()
    if st is None:
        pytest.skip("no standalone server (run under CTest, or set "
                    "AREDIS_TEST_STATE_DIR)")
    return st


@pytest.fixture
def private_server(server, tmp_path):
    """A server of the test's own, which it may kill: started by
    tests/support/redis-server.sh, so it is ready (it answers PING on its
    unix socket) when the test starts, and stopped after the test."""
    env = dict(os.environ, AREDIS_TEST_STATE_DIR=str(tmp_path),
               AREDIS_TEST_OWNER_PID=str(os.getpid()))

    def script(verb):
        subprocess.run(["bash", SERVER_SCRIPT, verb, "private"], env=env,
                       check=True, stdout=subprocess.DEVNULL, timeout=60)

    script("start")
    try:
        yield state("private", str(tmp_path))
    finally:
        script("stop")


def pytest_generate_tests(metafunc):
    # Coroutine tests run on both loops; plain tests once.
    if "loop_kind" in metafunc.fixturenames and \
            asyncio.iscoroutinefunction(metafunc.function):
        metafunc.parametrize("loop_kind", ["asyncio", "uvloop"],
                             indirect=True)


@pytest.fixture(autouse=True)
def loop_kind(request):
    return getattr(request, "param", "asyncio")


@pytest.fixture
def event_loop(loop_kind):
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    threads = threading.active_count()
    yield loop
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    # The C core runs on the loop: no thread of its own, ever.
    assert threading.active_count() == threads


@pytest.fixture
def port(server):
    return int(server["port"])


@pytest.fixture
async def r(port):
    client = aredis.StrictRedis(host="127.0.0.1", port=port, db=3)
    await client.flushdb()
    yield client
    client.close()


@pytest.fixture
async def rd(port):
    client = aredis.StrictRedis(host="127.0.0.1", port=port, db=3,
                                decode_responses=True)
    await client.flushdb()
    yield client
    client.close()
