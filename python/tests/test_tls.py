"""TLS (ssl=True and its file options; rediss:// URLs), against the
redis_tls fixture: a TLS-only server with its own CA."""
import os
import ssl

import pytest

import aredis
from conftest import state


@pytest.fixture
def tls():
    st = state("tls")
    if st is None:
        pytest.skip("no TLS server")
    return st


async def test_ssl_with_ca(tls):
    ca = os.path.join(tls["dir"], "ca.crt")
    c = aredis.StrictRedis(host="127.0.0.1", port=int(tls["port"]),
                           ssl=True, ssl_ca_certs=ca)
    assert await c.ping() is True
    mutual = aredis.StrictRedis(
        host="127.0.0.1", port=int(tls["port"]), ssl=True, ssl_ca_certs=ca,
        ssl_certfile=os.path.join(tls["dir"], "client.crt"),
        ssl_keyfile=os.path.join(tls["dir"], "client.key"))
    assert await mutual.ping() is True


async def test_ssl_verification_fails_without_the_ca(tls):
    c = aredis.StrictRedis(host="127.0.0.1", port=int(tls["port"]),
                           ssl=True, connect_timeout=2)
    with pytest.raises(aredis.ConnectionError):
        await c.ping()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    insecure = aredis.StrictRedis(host="127.0.0.1", port=int(tls["port"]),
                                  ssl_context=ctx)
    assert await insecure.ping() is True


async def test_rediss_url(tls):
    ca = os.path.join(tls["dir"], "ca.crt")
    c = aredis.StrictRedis.from_url(
        f"rediss://127.0.0.1:{tls['port']}/0?tls_ca_file={ca}"
        "&decode_responses=yes")
    await c.set("tls-key", "v")
    assert await c.get("tls-key") == "v"


async def test_rediss_url_options(tls):
    # redis-py's URL and keyword forms: ssl_cert_reqs=none skips the
    # verification; ssl_ca_certs with a rediss:// URL verifies with it.
    port = tls["port"]
    for url, kw in ((f"rediss://127.0.0.1:{port}?ssl_cert_reqs=none", {}),
                    (f"rediss://127.0.0.1:{port}", {"ssl_cert_reqs": "none"}),
                    (f"rediss://127.0.0.1:{port}", {
                        "ssl_ca_certs": os.path.join(tls["dir"], "ca.crt")})):
        c = aredis.StrictRedis.from_url(url, connect_timeout=2, **kw)
        assert await c.ping() is True, (url, kw)
        c.close()
    c = aredis.StrictRedis.from_url(f"rediss://127.0.0.1:{port}",
                                    connect_timeout=2)
    with pytest.raises(aredis.ConnectionError):
        await c.ping()      # verified, and the CA is unknown
    c.close()
