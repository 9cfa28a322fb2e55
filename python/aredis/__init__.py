"""aredis: the asyncio Redis client of the aredis documentation, on the
aredis C library (a CPython extension; no Python-level protocol code)."""
from . import _core
from .exceptions import (AskError, AuthenticationError, BusyLoadingError,
                         CacheError, ClusterCrossSlotError, ClusterDownError,
                         CompressError, ConnectionError, DataError,
                         ExecAbortError, InvalidResponse, LockError,
                         LockNotOwnedError, MasterNotFoundError, MovedError,
                         NoScriptError, PubSubError, ReadOnlyError,
                         RedisClusterException, RedisError, ResponseError,
                         SerializeError, SlaveNotFoundError, TimeoutError,
                         TryAgainError, WatchError)
from .client import (Pipeline, Redis, StrictPipeline, StrictRedis,
                     StrictRedisCluster)
from .cache import (Cache, Compressor, HerdCache, IdentityGenerator,
                    Serializer)
from .lock import ClusterLock, Lock, LuaLock
from .pubsub import PubSub
from .scripting import Script
from .sentinel import Sentinel

__version__ = "0.1.0"
libaredis_version = _core.libaredis_version()

__all__ = [
    "StrictRedis", "Redis", "StrictRedisCluster", "Pipeline",
    "StrictPipeline", "PubSub", "Script", "Sentinel", "Lock", "LuaLock",
    "ClusterLock", "Cache", "HerdCache", "IdentityGenerator", "Serializer",
    "Compressor", "RedisError", "ConnectionError", "TimeoutError",
    "BusyLoadingError", "InvalidResponse", "ResponseError", "DataError",
    "PubSubError", "WatchError", "NoScriptError", "ExecAbortError",
    "ReadOnlyError", "AuthenticationError", "LockError",
    "LockNotOwnedError", "CacheError", "SerializeError", "CompressError",
    "RedisClusterException", "ClusterDownError", "MovedError", "AskError",
    "TryAgainError", "ClusterCrossSlotError", "MasterNotFoundError",
    "SlaveNotFoundError",
]
