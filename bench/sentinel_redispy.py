#!/usr/bin/python3
"""The Sentinel benchmark's peer: redis-py (Debian's python3-redis) through
redis.sentinel.Sentinel, on the same kind of set-up and with the same
figures as bench_sentinel (bench/sentinel.sh runs it with PEERS=1):

  s1  kill -9 of the master while writing 500 SET/s
  s2  SENTINEL FAILOVER while writing 500 SET/s
  s4  the first SET with sentinel 1 paused (SIGSTOP), then killed

    sentinel_redispy.py SCENARIO STATE_FILE

The time of +switch-master comes from a subscription of our own on a
sentinel, in a thread. redis-py writes synchronously: a write that fails is
counted and the next one goes on."""
import os
import signal
import sys
import threading
import time

import redis
from redis.sentinel import Sentinel


def now_ms():
    return time.monotonic() * 1000.0


def load(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            out[k] = v
    return out


def addrs(s):
    return [(h, int(p)) for h, p in (a.split(":") for a in s.split(",") if a)]


class Events(threading.Thread):
    def __init__(self, host, port):
        super().__init__(daemon=True)
        self.switch_at = 0.0
        self.ps = redis.Redis(host=host, port=port).pubsub()
        self.ps.psubscribe("*")
        self.ps.get_message(timeout=2)  # the confirmation

    def run(self):
        while True:
            m = self.ps.get_message(timeout=1)
            if m and m.get("channel") == b"+switch-master" and not self.switch_at:
                self.switch_at = now_ms()


def failover(st, which):
    sents = addrs(st["sentinels"])
    ev = Events(*sents[1])
    ev.start()
    sentinel = Sentinel(sents, socket_timeout=0.5)
    m = sentinel.master_for("mymaster", socket_timeout=0.5)
    prefix = "peer-%s-%d" % (which, os.getpid())
    acked, done_at, failed, n = {}, {}, 0, 0
    for i in range(50):
        m.set("%s:%d" % (prefix, i), i)
    t0 = now_ms()
    if which == "s2":
        redis.Redis(*sents[1]).execute_command("SENTINEL FAILOVER", "mymaster")
    else:
        os.kill(int(st["master_pid"]), signal.SIGKILL)
    first_ok = 0.0
    nxt = now_ms()
    while now_ms() - t0 < 30000 and (not ev.switch_at or now_ms() - ev.switch_at < 500):
        if now_ms() < nxt:
            time.sleep(0.0005)
            continue
        nxt += 2
        i = n
        n += 1
        try:
            m.set("%s:%d" % (prefix, i), i)
            acked[i] = now_ms()
            if ev.switch_at and not first_ok and acked[i] >= ev.switch_at:
                first_ok = acked[i]
        except redis.RedisError:
            failed += 1
    if not ev.switch_at:
        print("%s: no +switch-master in 30 s" % which)
        return
    # The new master, once the third sentinel names it.
    old = addrs(st["master"])[0]
    host, port = old
    for _ in range(200):
        host, port = sentinel.discover_master("mymaster")
        if (host, port) != old:
            break
        time.sleep(0.05)
    new = redis.Redis(host=host, port=port)
    lost = sum(1 for i in acked if not new.exists("%s:%d" % (prefix, i)))
    after = sum(1 for i, t in acked.items()
                if t >= ev.switch_at and not new.exists("%s:%d" % (prefix, i)))
    print("%s: redis-py switch_ms=%d first_ok_after_switch_ms=%d writes=%d "
          "acked=%d failed=%d acked_but_lost=%d lost_after_switch=%d"
          % (which, ev.switch_at - t0, first_ok - ev.switch_at if first_ok else -1,
             n, len(acked), failed, lost, after))


def first_set_ms(sents, cap_s):
    t0 = now_ms()
    result = {}

    def go():
        try:
            Sentinel(sents).master_for("mymaster").set("peer-s4", "x")
            result["ms"] = now_ms() - t0
        except redis.RedisError as e:
            result["err"] = str(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(cap_s)
    if "ms" in result:
        return "%d" % result["ms"]
    return "error" if "err" in result else ">%d000" % cap_s


def seeds(st):
    sents = addrs(st["sentinels"])
    pid = int(st["sentinel_pids"].split(",")[0])
    os.kill(pid, signal.SIGSTOP)
    hung = first_set_ms(sents, 10)
    os.kill(pid, signal.SIGCONT)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    dead = first_set_ms(sents, 10)
    print("s4: redis-py first_set_ms_sentinel1_hung=%s "
          "first_set_ms_sentinel1_dead=%s (default settings)" % (hung, dead))


def main():
    which, path = sys.argv[1], sys.argv[2]
    st = load(path)
    if which == "s4":
        seeds(st)
    else:
        failover(st, which)
    sys.stdout.flush()
    os._exit(0)  # the hung-sentinel thread may still wait


main()
