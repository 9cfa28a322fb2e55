"""Cache and HerdCache: values computed by the program, kept in Redis under
names derived from what they were computed from.

Fixed against the original: HerdCache stores the key with a Redis TTL of
expire_time + herd_timeout (so the herd protection can fire at all), and the
"first reader after expiry recomputes" step is one Lua script (two readers
can never both be told to recompute). Values are serialized with repr() and
read back with ast.literal_eval() (Python literals only: a shared cache
cannot make a reader run code), and compressed with zlib above a threshold
behind a header byte, so a reader never guesses.
"""
import ast
import hashlib
import time
import zlib

from .exceptions import CompressError, SerializeError


class IdentityGenerator:
    """app:key:md5(content) names an entry; override generate()."""

    TEMPLATE = "{app}:{key}:{content}"

    def __init__(self, app, encoding="utf-8"):
        self.app = app
        self.encoding = encoding

    def _trans_type(self, content):
        if isinstance(content, bytes):
            return content
        if isinstance(content, str):
            return content.encode(self.encoding)
        if isinstance(content, dict):
            content = sorted(content.items(), key=repr)
        return repr(content).encode(self.encoding)

    def generate(self, key, content):
        digest = hashlib.md5(self._trans_type(content)).hexdigest()
        return self.TEMPLATE.format(app=self.app, key=key, content=digest)


class Compressor:
    """zlib above min_length bytes; one header byte says which."""

    RAW, ZLIB = b"\x00", b"\x01"

    def __init__(self, encoding="utf-8", min_length=15):
        self.encoding = encoding
        self.min_length = min_length

    def compress(self, content):
        if isinstance(content, str):
            content = content.encode(self.encoding)
        if len(content) >= self.min_length:
            z = zlib.compress(content)
            if len(z) < len(content):
                return self.ZLIB + z
        return self.RAW + content

    def decompress(self, content):
        head, body = content[:1], content[1:]
        if head == self.RAW:
            return body
        if head == self.ZLIB:
            try:
                return zlib.decompress(body)
            except zlib.error as e:
                raise CompressError(f"corrupt cache entry: {e}") from e
        raise CompressError("cache entry in an unknown format")


class Serializer:
    """Python literals (dict, list, tuple, set, str, bytes, numbers, bool,
    None) through repr() and ast.literal_eval()."""

    def __init__(self, encoding="utf-8"):
        self.encoding = encoding

    def serialize(self, content):
        text = repr(content)
        try:
            ast.literal_eval(text)
        except (ValueError, SyntaxError) as e:
            raise SerializeError(f"cannot serialize {type(content)}") from e
        return text.encode(self.encoding)

    def deserialize(self, content):
        if isinstance(content, bytes):
            content = content.decode(self.encoding)
        try:
            return ast.literal_eval(content)
        except (ValueError, SyntaxError) as e:
            raise SerializeError("corrupt cache entry") from e


class BasicCache:
    def __init__(self, client, app="", identity_generator_class=None,
                 compressor_class=None, serializer_class=None,
                 encoding="utf-8"):
        self.client = client
        self.app = app
        self.encoding = encoding
        self.identity_generator = identity_generator_class(app, encoding) \
            if identity_generator_class else None
        self.compressor = compressor_class(encoding) \
            if compressor_class else None
        self.serializer = serializer_class(encoding) \
            if serializer_class else None

    def _gen_identity(self, key, param=None):
        if self.identity_generator and param is not None:
            return self.identity_generator.generate(key, param)
        return key

    def _pack(self, value):
        if self.serializer:
            value = self.serializer.serialize(value)
        if self.compressor:
            value = self.compressor.compress(value)
        return value

    def _unpack(self, value):
        if value is None:
            return None
        if isinstance(value, str):
            value = value.encode(self.encoding)
        if self.compressor:
            value = self.compressor.decompress(value)
        if self.serializer:
            value = self.serializer.deserialize(value)
        return value

    async def delete(self, key, param=None):
        return await self.client.delete(self._gen_identity(key, param))

    async def delete_pattern(self, pattern, count=None):
        n = 0
        async for k in self.client.scan_iter(match=pattern, count=count):
            n += await self.client.delete(k)
        return n

    async def delete_many(self, keys, params=None):
        params = params or [None] * len(keys)
        if not keys:
            return 0
        return await self.client.delete(
            *[self._gen_identity(k, p) for k, p in zip(keys, params)])

    async def exist(self, key, param=None):
        return await self.client.exists(self._gen_identity(key, param))

    exists = exist

    async def ttl(self, key, param=None):
        return await self.client.ttl(self._gen_identity(key, param))


class Cache(BasicCache):
    async def get(self, key, param=None):
        return self._unpack(await self.client.get(
            self._gen_identity(key, param)))

    async def set(self, key, value, param=None, expire_time=None,
                  herd_timeout=None):
        ex = int(expire_time) if expire_time else None
        return await self.client.set(self._gen_identity(key, param),
                                     self._pack(value), ex=ex)

    async def set_many(self, data, param=None, expire_time=None):
        pipe = self.client.pipeline(transaction=False)
        ex = int(expire_time) if expire_time else None
        for key, value in data.items():
            pipe.set(self._gen_identity(key, param), self._pack(value),
                     ex=ex)
        return await pipe.execute()


_HERD_GET = """
local v = redis.call('HMGET', KEYS[1], 'value', 'expire_at')
if not v[1] then return nil end
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
local exp = tonumber(v[2])
if exp ~= nil and exp > 0 and now_s > exp then
    redis.call('HSET', KEYS[1], 'expire_at', now_s + tonumber(ARGV[1]))
    return {v[1], 1}
end
return {v[1], 0}
"""


class HerdCache(Cache):
    """A cache for values that are expensive to recompute: after
    expire_time, the first reader gets None (recompute and set it) while
    the others keep getting the old value for herd_timeout seconds."""

    def __init__(self, client, app="", identity_generator_class=None,
                 compressor_class=None, serializer_class=None,
                 default_herd_timeout=1, extend_herd_timeout=1,
                 encoding="utf-8"):
        super().__init__(client, app, identity_generator_class,
                         compressor_class, serializer_class, encoding)
        self.default_herd_timeout = default_herd_timeout
        self.extend_herd_timeout = extend_herd_timeout
        self._get_script = client.register_script(_HERD_GET)

    async def set(self, key, value, param=None, expire_time=None,
                  herd_timeout=None):
        identity = self._gen_identity(key, param)
        herd = herd_timeout if herd_timeout is not None \
            else self.default_herd_timeout
        expire_at = time.time() + expire_time if expire_time else 0
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(identity)
        pipe.hset(identity, mapping={"value": self._pack(value),
                                     "expire_at": repr(expire_at)})
        if expire_time:
            # The key outlives its expiry by the herd timeout: that is the
            # window in which the stale value is served.
            pipe.pexpire(identity, int((expire_time + herd) * 1000))
        res = await pipe.execute()
        return bool(res[1] is not None)

    async def set_many(self, data, param=None, expire_time=None,
                       herd_timeout=None):
        return [await self.set(k, v, param, expire_time, herd_timeout)
                for k, v in data.items()]

    async def get(self, key, param=None, extend_herd_timeout=None):
        ext = extend_herd_timeout if extend_herd_timeout is not None \
            else self.extend_herd_timeout
        r = await self._get_script.execute(
            keys=[self._gen_identity(key, param)], args=[ext])
        if r is None:
            return None
        value, recompute = r
        if recompute:
            return None
        return self._unpack(value)
