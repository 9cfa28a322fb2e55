"""The exception hierarchy of the aredis API (as redis-py's).

The C core maps its error codes and the server's error prefixes onto these
classes (see _ERROR_CODES and _ERROR_PREFIXES, handed to the core at import).
"""
from . import _core


class RedisError(Exception):
    pass


class ConnectionError(RedisError):  # noqa: A001 - the documented name
    pass


class TimeoutError(RedisError):  # noqa: A001 - the documented name
    pass


class BusyLoadingError(ConnectionError):
    pass


class InvalidResponse(RedisError):
    pass


class ResponseError(RedisError):
    pass


class DataError(RedisError):
    pass


class PubSubError(RedisError):
    pass


class WatchError(RedisError):
    pass


class NoScriptError(ResponseError):
    pass


class ExecAbortError(ResponseError):
    pass


class ReadOnlyError(ResponseError):
    pass


class AuthenticationError(ConnectionError):
    pass


class LockError(RedisError, ValueError):
    """Errors acquiring or releasing a lock."""


class LockNotOwnedError(LockError):
    """The lock is held by another owner now (it expired meanwhile)."""


class CacheError(RedisError):
    pass


class SerializeError(CacheError):
    pass


class CompressError(CacheError):
    pass


class RedisClusterException(Exception):
    pass


class RedisClusterError(Exception):
    pass


class ClusterDownError(ResponseError):
    pass


class MovedError(ResponseError):
    pass


class AskError(ResponseError):
    pass


class TryAgainError(ResponseError):
    pass


class ClusterCrossSlotError(ResponseError):
    pass


class MasterNotFoundError(ConnectionError):
    pass


class SlaveNotFoundError(ConnectionError):
    pass


_ERROR_CODES = {
    _core.ETIMEDOUT: TimeoutError,
    _core.EWATCH: WatchError,
    _core.ENOSCRIPT: NoScriptError,
    _core.EAUTH: AuthenticationError,
    _core.ELOCKLOST: LockNotOwnedError,
    _core.ENOTHELD: LockError,
    _core.ENOMASTER: MasterNotFoundError,
    _core.EINVAL: DataError,
    _core.EFORMAT: DataError,
    _core.EURL: DataError,
    _core.ENOTSUP: RedisError,
    _core.ESTATE: RedisError,
    _core.ECORRUPT: CacheError,
}

_ERROR_PREFIXES = {
    "NOSCRIPT": NoScriptError,
    "LOADING": BusyLoadingError,
    "READONLY": ReadOnlyError,
    "EXECABORT": ExecAbortError,
    "NOAUTH": AuthenticationError,
    "WRONGPASS": AuthenticationError,
    "CLUSTERDOWN": ClusterDownError,
    "MOVED": MovedError,
    "ASK": AskError,
    "TRYAGAIN": TryAgainError,
    "CROSSSLOT": ClusterCrossSlotError,
}

_core.configure(codes=_ERROR_CODES, prefixes=_ERROR_PREFIXES,
                server_default=ResponseError, client_default=ConnectionError)
