"""Run the documentation's examples (python/examples/docs/, as written)
and their corrected copies (python/examples/fixed/) through
examples/run_doc_example.py, one process each."""
import os
import subprocess
import sys

import aredis

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")
RUNNER = os.path.join(EXAMPLES, "run_doc_example.py")

# What each documentation example does when run as written, and why.
# "ok" means it runs unchanged; a tuple lists the outcomes it may have.
AS_WRITTEN = {
    "getting_started.py": ("ok", ""),
    "loop.py": ("ok", ""),
    "pipeline.py": (("ok", "AssertionError"),
                    "asserts KEYS * returns [b'bar', b'foo']; Redis returns "
                    "keys in no particular order, so it passes or not by "
                    "chance"),
    "cluster.py": ("ok", ""),
    "unix_socket.py": ("NameError: name 'redis'",
                       "uses redis-py's module name `redis`"),
    "pubsub.py": ("SyntaxError", "`await message = p.get_message()` is not "
                  "Python; also `redis.StrictRedis(...)` placeholders"),
    "pubsub_loop.py": ("NameError: name 'p'", "a fragment: `p` is defined "
                       "in another block"),
    "pubsub_listen.py": ("NameError: name 'p'", "a fragment: `p` is defined "
                         "in another block"),
    "sentinel.py": ("TypeError: object tuple can't be used in 'await' "
                    "expression", "imports redis-py's Sentinel (`from "
                    "redis.sentinel import Sentinel`), a blocking client, "
                    "and awaits it"),
    "scripting.py": ("NameError: name 'redis'",
                     "uses redis-py's module name `redis`"),
    "pipeline_no_transaction.py": ("NameError: name 'r'", "a fragment"),
    "watch.py": ("NameError: name 'r'", "`r` and `WatchError` are not "
                 "defined in the example"),
    "watch_reset.py": ("NameError: name 'r'", "`r`, `WatchError` undefined; "
                       "`...` stands for the work"),
    "transaction.py": ("NameError: name 'r'", "a fragment: `r` undefined"),
    "streams.py": ("ResponseError: The ID specified in XADD must be greater "
                   "than 0-0", "stream_id=0 is refused by Redis (ids start "
                   "at 0-1); it also uses an undefined `r`"),
    "lock.py": ("NameError: name 'aredis'", "`import aredis` missing"),
    "cluster_lock.py": ("NameError: name 'aredis'",
                        "`import aredis` and `ClusterLock` missing"),
    "cache.py": ("NameError: name 'IdentityGenerator'",
                 "imports missing"),
}

# The same examples run in the documentation's context (run_doc_example.py
# --context: the package imported, also as `redis`, its classes, a client
# `r` and a pubsub `p`, which the fragments take for granted). What each
# does then, where it differs from "ok", and why.
IN_CONTEXT = {
    "pipeline.py": (("ok", "AssertionError"), AS_WRITTEN["pipeline.py"][1]),
    "pubsub.py": ("SyntaxError", "`await message = p.get_message()` is not "
                  "Python"),
    "pubsub_loop.py": ("endless", "a consumer's `while True` loop with no "
                       "way out: it runs (polling p) until stopped"),
    "scripting.py": ("RuntimeError: not a test server: redis2.example.com",
                     "talks to a second server, redis2.example.com, which "
                     "the test does not reach out to"),
    "streams.py": ("ResponseError: The ID specified in XADD must be greater "
                   "than 0-0", "stream_id=0 is refused by Redis (ids start "
                   "at 0-1)"),
    "transaction.py": ("TypeError: int() argument", "int(None): the example "
                       "takes the key to hold a number already"),
    "watch.py": ("TypeError: int() argument", "int(None): the example takes "
                 "the key to hold a number already"),
}

NEEDS = {"cluster.py": "cluster", "sentinel.py": "sentinel"}


def run(path, env_extra, context=False, timeout=60):
    env = dict(os.environ)
    env.update(env_extra)
    # The aredis package under test, wherever it was imported from.
    pkg = os.path.dirname(os.path.dirname(aredis.__file__))
    env["PYTHONPATH"] = os.pathsep.join([pkg, env.get("PYTHONPATH", "")])
    args = [sys.executable, RUNNER] + (["--context"] if context else [])
    p = subprocess.run(args + [path], env=env, capture_output=True,
                       text=True, timeout=timeout)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert p.returncode == 0 and lines, p.stdout + p.stderr
    return lines[-1][len("RESULT "):], p.stdout + p.stderr
