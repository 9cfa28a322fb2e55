"""Sentinel: discovery calls, and clients that follow the master (or a
replica) of a service through the C library's sentinel topology."""
from .client import StrictRedis
from .exceptions import (ConnectionError, MasterNotFoundError,
                         ResponseError, SlaveNotFoundError, TimeoutError)


def _addr(host, port):
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class Sentinel:
    def __init__(self, sentinels, min_other_sentinels=0,
                 sentinel_kwargs=None, **connection_kwargs):
        self.sentinel_addrs = [(h, int(p)) for h, p in sentinels]
        sentinel_kwargs = dict(sentinel_kwargs or {})
        for k in ("stream_timeout", "socket_timeout"):
            if k in connection_kwargs and k not in sentinel_kwargs:
                sentinel_kwargs[k] = connection_kwargs[k]
        self.sentinel_kwargs = sentinel_kwargs
        self.sentinels = [StrictRedis(host=h, port=p, **sentinel_kwargs)
                          for h, p in self.sentinel_addrs]
        self.min_other_sentinels = min_other_sentinels
        self.connection_kwargs = connection_kwargs

    async def discover_master(self, service_name):
        for i, s in enumerate(self.sentinels):
            try:
                addr = await s.execute_command(
                    "SENTINEL GET-MASTER-ADDR-BY-NAME", service_name)
            except (ConnectionError, TimeoutError, ResponseError):
                continue
            if addr:
                # The sentinel that answered goes first next time.
                self.sentinels.insert(0, self.sentinels.pop(i))
                return addr
        raise MasterNotFoundError(f"No master found for {service_name!r}")

    async def discover_slaves(self, service_name):
        for s in self.sentinels:
            try:
                replicas = await s.execute_command("SENTINEL SLAVES",
                                                   service_name)
            except (ConnectionError, TimeoutError, ResponseError):
                continue
            out = []
            for r in replicas:
                if isinstance(r, list):
                    it = iter(r)
                    r = dict(zip(it, it))
                r = {(k.decode() if isinstance(k, bytes) else k):
                     (v.decode() if isinstance(v, bytes) else v)
                     for k, v in r.items()}
                flags = set(r.get("flags", "").split(","))
                if flags & {"s_down", "o_down", "disconnected"}:
                    continue
                out.append((r["ip"], int(r["port"])))
            if out:
                return out
        return []

    def _client(self, service_name, role, redis_class, kwargs):
        kw = dict(self.connection_kwargs)
        kw.update(kwargs)
        addrs = ",".join(_addr(h, p) for h, p in self.sentinel_addrs)
        core = kw.setdefault("_core_options", {})
        core.update(sentinel_addrs=addrs, sentinel_service=service_name,
                    sentinel_role=role)
        return redis_class(db=kw.pop("db", 0), **kw)

    def master_for(self, service_name, redis_class=StrictRedis,
                   connection_pool_class=None, **kwargs):
        """A client of the service's master, following failovers."""
        return self._client(service_name, 0, redis_class, kwargs)

    def slave_for(self, service_name, redis_class=StrictRedis,
                  connection_pool_class=None, **kwargs):
        """A client of the service's replicas: each command goes to the next
        healthy one (the C client's sentinel topology, role=replica), and to
        the master when no replica is up."""
        kwargs.setdefault("_core_options", {}).setdefault(
            "sentinel_replica_fallback", 1)
        return self._client(service_name, 1, redis_class, kwargs)


__all__ = ["Sentinel", "MasterNotFoundError", "SlaveNotFoundError"]
