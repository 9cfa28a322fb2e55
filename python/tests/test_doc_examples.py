"""Every code example of the documentation, run against a real server: as
written (expected to run, or to fail for the reason recorded in
doc_examples.AS_WRITTEN), in the documentation's context (the names its
fragments take for granted; doc_examples.IN_CONTEXT), and corrected (must
run)."""
import os
import subprocess

import pytest

from conftest import standalone, state
from doc_examples import AS_WRITTEN, EXAMPLES, IN_CONTEXT, NEEDS, run


def env_for(name):
    st = standalone()
    if st is None:
        pytest.skip("no standalone server")
    env = {"AREDIS_EXAMPLE_PORT": st["port"],
           "AREDIS_EXAMPLE_UNIX": st["unixsocket"]}
    need = NEEDS.get(name)
    if need == "cluster":
        cl = state("cluster")
        if cl is None:
            pytest.skip("no cluster (python.cluster runs this one)")
        env["AREDIS_EXAMPLE_CLUSTER"] = f"{cl['host']}:{cl['port']}"
    if need == "sentinel":
        se = state("sentinel")
        if se is None:
            pytest.skip("no sentinel set-up (python.sentinel runs this one)")
        env["AREDIS_EXAMPLE_SENTINEL"] = se["sentinels"].split(",")[0]
    return env


def test_every_documentation_example_is_listed():
    files = sorted(os.listdir(os.path.join(EXAMPLES, "docs")))
    assert files == sorted(AS_WRITTEN)


@pytest.mark.parametrize("name", sorted(AS_WRITTEN))
def test_as_written(name):
    expected, why = AS_WRITTEN[name]
    result, out = run(os.path.join(EXAMPLES, "docs", name), env_for(name))
    if expected == "ok":
        assert result == "ok", out
    else:
        assert result.startswith(expected), f"{why}\n{out}"
    assert why or expected == "ok", "every failure has its reason"


@pytest.mark.parametrize("name", sorted(
    os.listdir(os.path.join(EXAMPLES, "fixed"))))
def test_corrected(name):
    result, out = run(os.path.join(EXAMPLES, "fixed", name), env_for(name))
    assert result == "ok", out


@pytest.mark.parametrize("name", sorted(AS_WRITTEN))
def test_in_context(name):
    expected, why = IN_CONTEXT.get(name, ("ok", ""))
    path = os.path.join(EXAMPLES, "docs", name)
    if expected == "endless":
        # Still running, without an error, when stopped.
        with pytest.raises(subprocess.TimeoutExpired):
            run(path, env_for(name), context=True, timeout=3)
        return
    result, out = run(path, env_for(name), context=True)
    if expected == "ok":
        assert result == "ok", out
    else:
        assert any(result.startswith(e) for e in
                   (expected if isinstance(expected, tuple) else
                    (expected,))), f"{why}\n{out}"
