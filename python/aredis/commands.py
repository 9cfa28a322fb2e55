"""The command methods, generated from one table.

Each row of COMMANDS is ``"method | COMMAND [SUB] | parameters"``. The
parameters, in order, become the method's signature and the command's
arguments:

    name            a required argument, sent as is
    name=default    an optional argument, sent only when not None
    *names          any number of arguments (one list or tuple is spread)
    name:TOKEN      keyword option, default None: sends TOKEN name
    name!TOKEN      keyword flag, default False: sends TOKEN when true
    name+           (suffix on any of the above) also passed to the
                    response callback as a keyword (withscores=...)
    name~UNIT       (suffix) a time: a datetime.timedelta is sent in
                    seconds (~s) or milliseconds (~ms), a datetime.datetime
                    as a unix time in seconds (~at) or milliseconds (~atms)
    @name           a dict, sent as key value key value ...

The generated method returns ``self.execute_command(COMMAND, ...)``: an
awaitable (a future from the C core on a client; the pipeline itself in a
buffering pipeline). Commands whose arguments do not fit this little
language are written by hand in CommandsMixin below; their number is kept
small. RESPONSE_CALLBACKS turns replies into the documented Python types.
"""
import datetime
import time

from . import _core
from .exceptions import ConnectionError, DataError, RedisError

bool_ok = _core.bool_ok
to_bool = _core.to_bool

# fmt: off
COMMANDS = """
# keys
delete | DEL | *names
unlink | UNLINK | *names
exists | EXISTS | name
touch | TOUCH | *keys
dump | DUMP | name
expire | EXPIRE | name time~s
expireat | EXPIREAT | name when~at
pexpire | PEXPIRE | name time~ms
pexpireat | PEXPIREAT | name when~atms
persist | PERSIST | name
ttl | TTL | name
pttl | PTTL | name
keys | KEYS | pattern='*'
move | MOVE | name db
object | OBJECT | infotype key
randomkey | RANDOMKEY |
rename | RENAME | src dst
renamenx | RENAMENX | src dst
restore | RESTORE | name ttl value replace!REPLACE
type | TYPE | name
wait | WAIT | num_replicas timeout
# strings
append | APPEND | key value
bitcount | BITCOUNT | key start=None end=None
bitop | BITOP | operation dest *keys
bitpos | BITPOS | key bit start=None end=None
decr | DECRBY | name amount=1
decrby | DECRBY | name amount=1
get | GET | name
getbit | GETBIT | name offset
getrange | GETRANGE | key start end
getset | GETSET | name value
getdel | GETDEL | name
incr | INCRBY | name amount=1
incrby | INCRBY | name amount=1
incrbyfloat | INCRBYFLOAT | name amount=1.0
mget | MGET | *keys
psetex | PSETEX | name time_ms~ms value
set | SET | name value ex:EX~s px:PX~ms nx!NX xx!XX keepttl!KEEPTTL get!GET
setbit | SETBIT | name offset value
setex | SETEX | name time~s value
setnx | SETNX | name value
setrange | SETRANGE | name offset value
strlen | STRLEN | name
substr | SUBSTR | name start end=-1
# lists
brpoplpush | BRPOPLPUSH | src dst timeout=0
lindex | LINDEX | name index
linsert | LINSERT | name where refvalue value
llen | LLEN | name
lpop | LPOP | name count=None
lpush | LPUSH | name *values
lpushx | LPUSHX | name *values
lrange | LRANGE | name start end
lrem | LREM | name count value
lset | LSET | name index value
ltrim | LTRIM | name start end
lpos | LPOS | name value rank:RANK count:COUNT maxlen:MAXLEN
lmove | LMOVE | src dst wherefrom='LEFT' whereto='RIGHT'
rpop | RPOP | name count=None
rpoplpush | RPOPLPUSH | src dst
rpush | RPUSH | name *values
rpushx | RPUSHX | name *values
# sets
sadd | SADD | name *values
scard | SCARD | name
sdiff | SDIFF | *keys
sdiffstore | SDIFFSTORE | dest *keys
sinter | SINTER | *keys
sinterstore | SINTERSTORE | dest *keys
sismember | SISMEMBER | name value
smembers | SMEMBERS | name
smismember | SMISMEMBER | name *values
smove | SMOVE | src dst value
spop | SPOP | name count=None
srandmember | SRANDMEMBER | name number=None
srem | SREM | name *values
sunion | SUNION | *keys
sunionstore | SUNIONSTORE | dest *keys
# sorted sets
zcard | ZCARD | name
zcount | ZCOUNT | name min max
zlexcount | ZLEXCOUNT | name min max
zpopmax | ZPOPMAX | name count=None
zpopmin | ZPOPMIN | name count=None
zrank | ZRANK | name value
zrem | ZREM | name *values
zremrangebylex | ZREMRANGEBYLEX | name min max
zremrangebyrank | ZREMRANGEBYRANK | name min max
zremrangebyscore | ZREMRANGEBYSCORE | name min max
zrevrank | ZREVRANK | name value
zscore | ZSCORE | name value
zmscore | ZMSCORE | name *members
# hashes
hdel | HDEL | name *keys
hexists | HEXISTS | name key
hget | HGET | name key
hgetall | HGETALL | name
hincrby | HINCRBY | name key amount=1
hincrbyfloat | HINCRBYFLOAT | name key amount=1.0
hkeys | HKEYS | name
hlen | HLEN | name
hmget | HMGET | name *keys
hmset | HMSET | name @mapping
hsetnx | HSETNX | name key value
hstrlen | HSTRLEN | name key
hvals | HVALS | name
hrandfield | HRANDFIELD | name count=None
# hyperloglog
pfadd | PFADD | name *values
pfcount | PFCOUNT | *sources
pfmerge | PFMERGE | dest *sources
# geo
geoadd | GEOADD | name *values
geodist | GEODIST | name place1 place2 unit=None
geohash | GEOHASH | name *values
geopos | GEOPOS | name *values
# pub/sub
publish | PUBLISH | channel message
pubsub_channels | PUBSUB CHANNELS | pattern='*'
pubsub_numpat | PUBSUB NUMPAT |
pubsub_numsub | PUBSUB NUMSUB | *channels
# scripting
eval | EVAL | script numkeys *keys_and_args
evalsha | EVALSHA | sha numkeys *keys_and_args
script_exists | SCRIPT EXISTS | *args
script_flush | SCRIPT FLUSH |
script_kill | SCRIPT KILL |
script_load | SCRIPT LOAD | script
# server
bgrewriteaof | BGREWRITEAOF |
bgsave | BGSAVE |
client_getname | CLIENT GETNAME |
client_id | CLIENT ID |
client_kill | CLIENT KILL | address
client_list | CLIENT LIST |
client_pause | CLIENT PAUSE | timeout=0
client_setname | CLIENT SETNAME | name
config_get | CONFIG GET | pattern='*'
config_resetstat | CONFIG RESETSTAT |
config_rewrite | CONFIG REWRITE |
config_set | CONFIG SET | name value
dbsize | DBSIZE |
debug_object | DEBUG OBJECT | key
echo | ECHO | value
flushall | FLUSHALL | asynchronous!ASYNC
flushdb | FLUSHDB | asynchronous!ASYNC
info | INFO | section=None
lastsave | LASTSAVE |
memory_usage | MEMORY USAGE | key
ping | PING |
role | ROLE |
save | SAVE |
slaveof | SLAVEOF | host='NO' port='ONE'
slowlog_get | SLOWLOG GET | num=None
slowlog_len | SLOWLOG LEN |
slowlog_reset | SLOWLOG RESET |
time | TIME |
# streams
xack | XACK | name group *stream_ids
xdel | XDEL | name *stream_ids
xgroup_create | XGROUP CREATE | name group stream_id='$' mkstream!MKSTREAM
xgroup_destroy | XGROUP DESTROY | name group
xgroup_setid | XGROUP SETID | name group stream_id
xgroup_delconsumer | XGROUP DELCONSUMER | name group consumer
xinfo_consumers | XINFO CONSUMERS | name group
xinfo_groups | XINFO GROUPS | name
xinfo_stream | XINFO STREAM | name
xlen | XLEN | name
xpending | XPENDING | name group
# sentinel (on a client of a sentinel)
sentinel_get_master_addr_by_name | SENTINEL GET-MASTER-ADDR-BY-NAME | service_name
sentinel_master | SENTINEL MASTER | service_name
sentinel_masters | SENTINEL MASTERS |
sentinel_monitor | SENTINEL MONITOR | name ip port quorum
sentinel_remove | SENTINEL REMOVE | name
sentinel_sentinels | SENTINEL SENTINELS | service_name
sentinel_set | SENTINEL SET | name option value
sentinel_slaves | SENTINEL SLAVES | service_name
# cluster
cluster_info | CLUSTER INFO |
cluster_keyslot | CLUSTER KEYSLOT | name
cluster_countkeysinslot | CLUSTER COUNTKEYSINSLOT | slot
cluster_nodes | CLUSTER NODES |
cluster_slots | CLUSTER SLOTS |
cluster_myid | CLUSTER MYID |
readonly | READONLY |
readwrite | READWRITE |
"""
# fmt: on


# ---- response callbacks ---------------------------------------------------

def _str(v):
    return v.decode() if isinstance(v, bytes) else v


def _float_or_none(r):
    return None if r is None else float(r)


def _int_or_none(r):
    return None if r is None else int(r)


def _to_set(r):
    return set(r) if r else set()


def _ping(r):
    return _str(r) == "PONG"


def _pairs(r):
    """RESP3 [[member, score], ...] (or a flat RESP2 list) -> [(m, s)]."""
    if not r:
        return []
    if isinstance(r[0], list):
        return [(m, float(s)) for m, s in r]
    it = iter(r)
    return [(m, float(s)) for m, s in zip(it, it)]


def zset_score_pairs(response, **options):
    if not options.get("withscores"):
        return response
    cast = options.get("score_cast_func", float)
    return [(m, cast(s)) for m, s in _pairs(response)]


def _zpop(r):
    if r and not isinstance(r[0], list):
        r = [r] if len(r) == 2 and not isinstance(r[1], (bytes, str)) else r
    return _pairs(r)


def _blpop(r):
    return tuple(r) if r else None


def _time(r):
    return int(r[0]), int(r[1])


def parse_info(response):
    info = {}
    response = _str(response)

    def get_value(value):
        if "," not in value or "=" not in value:
            try:
                return float(value) if "." in value else int(value)
            except ValueError:
                return value
        sub = {}
        for item in value.split(","):
            k, _, v = item.rpartition("=")
            sub[k] = get_value(v)
        return sub

    for line in response.splitlines():
        if line and not line.startswith("#"):
            if ":" in line:
                key, value = line.split(":", 1)
                info[key] = get_value(value)
            else:
                info.setdefault("__raw__", []).append(line)
    return info


def parse_client_list(response, **options):
    clients = []
    for c in _str(response).splitlines():
        clients.append(dict(pair.split("=", 1) for pair in c.split(" ")
                            if "=" in pair))
    return clients


def parse_config_get(response, **options):
    """{name: value} as str, whatever decode_responses says (as the
    documented client: the names are Redis's own)."""
    items = response.items() if isinstance(response, dict) \
        else zip(*[iter(response or [])] * 2)
    return {_str(k): _str(v) for k, v in items}


def parse_lastsave(response):
    return None if response is None else \
        datetime.datetime.fromtimestamp(int(response))


def parse_debug_object(response):
    """'Value at:0x.. refcount:1 encoding:embstr ...' -> {'type': 'Value',
    'at': '0x..', 'refcount': 1, ...} (numbers as int)."""
    out = {}
    for item in ("type:" + _str(response)).split():
        k, _, v = item.partition(":")
        out[k] = int(v) if v.lstrip("-").isdigit() else v
    return out


def sort_return_tuples(response, **options):
    n = options.get("groups")
    if not response or not n:
        return response
    return list(zip(*[response[i::n] for i in range(n)]))


def parse_hscan(response, **options):
    cursor, r = response
    if isinstance(r, dict):
        return int(cursor), r
    it = iter(r)
    return int(cursor), dict(zip(it, it))


def parse_scan(response, **options):
    cursor, r = response
    return int(cursor), r


def parse_zscan(response, **options):
    cursor, r = response
    cast = options.get("score_cast_func", float)
    it = iter(r)
    return int(cursor), [(m, cast(s)) for m, s in zip(it, it)]


def parse_pubsub_numsub(response, **options):
    if isinstance(response, dict):
        return list(response.items())
    it = iter(response)
    return list(zip(it, it))


def parse_slowlog_get(response, **options):
    return [{
        "id": item[0],
        "start_time": int(item[1]),
        "duration": int(item[2]),
        "command": b" ".join(item[3]) if isinstance(item[3][0], bytes)
        else " ".join(item[3]),
    } for item in response]


def parse_cluster_slots(response, **options):
    res = {}
    for slot in response:
        start, end = slot[0], slot[1]
        nodes = []
        for i, node in enumerate(slot[2:]):
            nodes.append({"host": node[0], "port": node[1],
                          "node_id": node[2] if len(node) > 2 else "",
                          "server_type": "master" if i == 0 else "slave"})
        res[(start, end)] = nodes
    return res


def parse_cluster_info(response, **options):
    return dict(line.split(":", 1) for line in _str(response).splitlines()
                if line)


def parse_cluster_nodes(response, **options):
    nodes = []
    for line in _str(response).splitlines():
        parts = line.split(" ")
        if len(parts) < 8:
            continue
        host, _, port = parts[1].split("@")[0].rpartition(":")
        nodes.append({"id": parts[0], "host": host,
                      "port": int(port) if port.isdigit() else port,
                      "flags": tuple(parts[2].split(",")),
                      "master": parts[3] if parts[3] != "-" else None,
                      "ping-sent": int(parts[4]), "pong-recv": int(parts[5]),
                      "link-state": parts[7], "slots": parts[8:]})
    return nodes


def _pairs_to_dict(r):
    if isinstance(r, dict):
        return r
    it = iter(r or [])
    return dict(zip(it, it))


def stream_list(response):
    if response is None:
        return None
    return [(r[0], _pairs_to_dict(r[1])) if r is not None else None
            for r in response]


def multi_stream_list(response):
    """XREAD/XREADGROUP: {stream: [(id, {field: value}), ...]}."""
    if response is None:
        return {}
    if isinstance(response, dict):
        items = response.items()
    else:
        items = ((s[0], s[1]) for s in response)
    return {name: stream_list(entries) for name, entries in items}


def parse_xinfo(response):
    return _pairs_to_dict(response)


def parse_xinfo_list(response):
    return [_pairs_to_dict(r) for r in response]


def parse_xpending(response, **options):
    if isinstance(response, list) and len(response) == 4 and \
            not isinstance(response[0], list):
        return {"pending": response[0], "min": response[1],
                "max": response[2],
                "consumers": [(c[0], int(c[1])) for c in response[3] or []]}
    return response


def parse_geopos(response):
    return [tuple(float(x) for x in p) if p is not None else None
            for p in response]


def parse_sentinel_addr(response):
    return (_str(response[0]), int(response[1])) if response else None


_SENTINEL_FLAGS = (("is_master", "master"), ("is_slave", "slave"),
                   ("is_sdown", "s_down"), ("is_odown", "o_down"),
                   ("is_sentinel", "sentinel"),
                   ("is_disconnected", "disconnected"),
                   ("is_master_down", "master_down"))


def parse_sentinel_state(item):
    """A SENTINEL MASTER/SLAVES/SENTINELS entry: {name: value} as str,
    numbers as int, and the flags also as is_master, is_sdown, ..."""
    items = item.items() if isinstance(item, dict) \
        else zip(*[iter(item)] * 2)
    out = {}
    for k, v in items:
        k, v = _str(k), _str(v)
        out[k] = int(v) if isinstance(v, str) and \
            v.lstrip("-").isdigit() else v
    flags = set(str(out.get("flags", "")).split(","))
    for name, flag in _SENTINEL_FLAGS:
        out[name] = flag in flags
    return out


def parse_sentinel_masters(response):
    return {s["name"]: s for s in map(parse_sentinel_state, response)}


def parse_sentinel_list(response):
    return [parse_sentinel_state(item) for item in response]


def parse_georadius(response, **options):
    """GEORADIUS(BYMEMBER): names as str; with WITHDIST, WITHHASH,
    WITHCOORD a list [name, dist, hash, (lon, lat)] per place (the ones
    asked for, in that order); with STORE(DIST) the count."""
    if options.get("store") or options.get("store_dist"):
        return response
    casts = [c for o, c in (("withdist", float), ("withhash", int),
                            ("withcoord", lambda ll: (float(ll[0]),
                                                      float(ll[1]))))
             if options.get(o)]
    if not casts:
        return [_str(r) for r in response]
    return [[_str(r[0])] + [c(v) for c, v in zip(casts, r[1:])]
            for r in response]


_OK = ("AUTH", "BGREWRITEAOF", "BGSAVE", "CLIENT KILL", "CLIENT PAUSE",
       "CLIENT SETNAME", "CONFIG RESETSTAT", "CONFIG REWRITE", "CONFIG SET",
       "FLUSHALL", "FLUSHDB", "LSET", "LTRIM", "MSET", "PFMERGE", "RENAME",
       "SAVE", "SET", "SETEX", "SLAVEOF", "PSETEX", "SCRIPT FLUSH",
       "SCRIPT KILL", "SLOWLOG RESET", "HMSET", "XGROUP CREATE",
       "SENTINEL MONITOR", "SENTINEL REMOVE", "SENTINEL SET",
       "XGROUP SETID", "READONLY", "READWRITE", "RESTORE")

RESPONSE_CALLBACKS = {
    **dict.fromkeys(_OK, bool_ok),
    **dict.fromkeys(
        "EXISTS EXPIRE EXPIREAT HEXISTS MOVE MSETNX PERSIST PEXPIRE "
        "PEXPIREAT RENAMENX SETNX SISMEMBER SMOVE".split(), to_bool),
    **dict.fromkeys("SDIFF SINTER SMEMBERS SUNION".split(), _to_set),
    **dict.fromkeys("ZRANGE ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE "
                    "ZUNION ZINTER".split(), zset_score_pairs),
    **dict.fromkeys("INCRBYFLOAT HINCRBYFLOAT ZINCRBY".split(), float),
    **dict.fromkeys("ZSCORE GEODIST".split(), _float_or_none),
    **dict.fromkeys("BLPOP BRPOP".split(), _blpop),
    **dict.fromkeys("ZPOPMAX ZPOPMIN".split(), _zpop),
    "PING": _ping,
    "TIME": _time,
    "INFO": parse_info,
    "CLIENT LIST": parse_client_list,
    "CLIENT GETNAME": _str,
    "LASTSAVE": parse_lastsave,
    "DEBUG OBJECT": parse_debug_object,
    "SORT": sort_return_tuples,
    "CONFIG GET": parse_config_get,
    "HGETALL": _pairs_to_dict,
    "SCAN": parse_scan,
    "SSCAN": parse_scan,
    "HSCAN": parse_hscan,
    "ZSCAN": parse_zscan,
    "SCRIPT EXISTS": lambda r: [bool(x) for x in r],
    "SCRIPT LOAD": _str,
    "PUBSUB NUMSUB": parse_pubsub_numsub,
    "SLOWLOG GET": parse_slowlog_get,
    "CLUSTER SLOTS": parse_cluster_slots,
    "CLUSTER INFO": parse_cluster_info,
    "CLUSTER NODES": parse_cluster_nodes,
    "XRANGE": stream_list,
    "XREVRANGE": stream_list,
    "XCLAIM": stream_list,
    "XREAD": multi_stream_list,
    "XREADGROUP": multi_stream_list,
    "XINFO STREAM": parse_xinfo,
    "XINFO GROUPS": parse_xinfo_list,
    "XINFO CONSUMERS": parse_xinfo_list,
    "XPENDING": parse_xpending,
    "XGROUP DESTROY": to_bool,
    "GEOPOS": parse_geopos,
    "SENTINEL GET-MASTER-ADDR-BY-NAME": parse_sentinel_addr,
    "SENTINEL MASTER": parse_sentinel_state,
    "SENTINEL MASTERS": parse_sentinel_masters,
    "SENTINEL SLAVES": parse_sentinel_list,
    "SENTINEL SENTINELS": parse_sentinel_list,
    "GEORADIUS": parse_georadius,
    "GEORADIUSBYMEMBER": parse_georadius,
}


# ---- the generator --------------------------------------------------------

def _spread(values):
    """*args given as one list or tuple are that list's items."""
    if len(values) == 1 and isinstance(values[0], (list, tuple)):
        return list(values[0])
    return list(values)


def _flatten(mapping):
    out = []
    for k, v in mapping.items():
        out.append(k)
        out.append(v)
    return out


def _seconds(t):
    return t.days * 86400 + t.seconds if isinstance(
        t, datetime.timedelta) else t


def _millis(t):
    return (t.days * 86400 + t.seconds) * 1000 + t.microseconds // 1000 \
        if isinstance(t, datetime.timedelta) else t


def _at(t):
    return int(time.mktime(t.timetuple())) if isinstance(
        t, datetime.datetime) else t


def _at_millis(t):
    return int(time.mktime(t.timetuple())) * 1000 + t.microsecond // 1000 \
        if isinstance(t, datetime.datetime) else t


_TIME_UNITS = {"s": "_seconds", "ms": "_millis", "at": "_at",
               "atms": "_at_millis"}


def _gen_method(method, command, params):
    sig, body, cb_opts, conv = ["self"], [], [], []
    fixed = [repr(command)]
    simple = True
    star = None
    for p in params:
        to_cb = p.endswith("+")
        p = p.rstrip("+")
        p, _, unit = p.partition("~")
        if unit:
            name = p.lstrip("@*").split("=")[0].split(":")[0]
            conv.append(f"    if {name} is not None: "
                        f"{name} = {_TIME_UNITS[unit]}({name})\n")
        if p.startswith("@"):
            name = p[1:]
            sig.append(name)
            body.append(f"    args += _flatten({name})")
            simple = False
        elif p.startswith("*"):
            star = p[1:]
            sig.append(p)
            body.append(f"    args += _spread({star})")
            simple = False
        elif "!" in p:
            name, token = p.split("!")
            sig.append(f"{name}=False")
            body.append(f"    if {name}: args.append({token!r})")
            simple = False
        elif ":" in p:
            name, token = p.split(":")
            sig.append(f"{name}=None")
            body.append(f"    if {name} is not None: "
                        f"args += ({token!r}, {name})")
            simple = False
        elif "=" in p:
            name = p.split("=")[0]
            sig.append(p)
            body.append(f"    if {name} is not None: args.append({name})")
            simple = False
        else:
            name = p
            sig.append(name)
            if simple:
                fixed.append(name)
            else:
                body.append(f"    args.append({name})")
        if to_cb:
            cb_opts.append(name)
    # A keyword argument after *names must stay keyword-only; fine in
    # Python 3 signatures as written.
    kw = "".join(f", {n}={n}" for n in cb_opts)
    if simple and not cb_opts:
        src = (f"def {method}({', '.join(sig)}):\n" + "".join(conv) +
               f"    return self.execute_command({', '.join(fixed)})\n")
    else:
        src = (f"def {method}({', '.join(sig)}):\n" + "".join(conv) +
               f"    args = [{', '.join(fixed)}]\n" + "\n".join(body) +
               f"\n    return self.execute_command(*args{kw})\n")
    ns = {"_spread": _spread, "_flatten": _flatten, **{
        f: globals()[f] for f in _TIME_UNITS.values()}}
    exec(compile(src, f"<aredis command {method}>", "exec"), ns)
    fn = ns[method]
    fn.__doc__ = f"{command} ({' '.join(params)}): see the Redis command " \
        "reference."
    return fn


def _parse_table(table):
    for line in table.strip().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        method, command, params = (x.strip() for x in line.split("|"))
        yield method, command, params.split()


def build_methods(table=COMMANDS):
    return {m: _gen_method(m, c, p) for m, c, p in _parse_table(table)}


GENERATED = build_methods()


def _is_number(v):
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _mapping(command, args, kwargs):
    if args and (len(args) != 1 or not isinstance(args[0], dict)):
        raise DataError(f"{command} requires **kwargs or a single dict arg")
    return {**(args[0] if args else {}), **kwargs}


class BitField:
    """The BITFIELD builder of the documented API: set/get/incrby/overflow
    return the builder, ``await exc()`` sends the command."""

    def __init__(self, redis_client, key):
        self.redis = redis_client
        self._command_stack = ["BITFIELD", key]

    def set(self, type, offset, value):
        self._command_stack += ["SET", type, offset, value]
        return self

    def get(self, type, offset):
        self._command_stack += ["GET", type, offset]
        return self

    def incrby(self, type, offset, increment):
        self._command_stack += ["INCRBY", type, offset, increment]
        return self

    def overflow(self, type="SAT"):
        self._command_stack += ["OVERFLOW", type]
        return self

    async def exc(self):
        return await self.redis.execute_command(*self._command_stack)


class CommandsMixin:
    """Commands whose arguments the table cannot express."""

    def zadd(self, name, *args, **kwargs):
        """ZADD name [NX|XX] [CH] [INCR] score member ...

        Pairs as score1, name1, score2, name2, ..., or name1=score1, ...,
        or one dict {member: score}; options nx, xx, ch, incr as keywords.
        """
        opts = [tok for tok in ("nx", "xx", "ch", "incr")
                if kwargs.pop(tok, False)]
        pieces = ["ZADD", name] + [o.upper() for o in opts]
        if len(args) == 1 and isinstance(args[0], dict):
            for m, s in args[0].items():
                pieces += (s, m)
        else:
            if len(args) % 2:
                raise DataError("ZADD requires an equal number of "
                                "values and scores")
            pieces += args
        for m, s in kwargs.items():
            pieces += (s, m)
        return self.execute_command(*pieces)

    def zincrby(self, name, value, amount=1):
        """ZINCRBY: add ``amount`` to the score of member ``value``. The
        redis-py 3 order (name, amount, value) is taken too when it cannot
        be meant otherwise (a number, then a member that is no number)."""
        if isinstance(value, (int, float)) and not _is_number(amount):
            value, amount = amount, value
        return self.execute_command("ZINCRBY", name, amount, value)

    def zrangebylex(self, name, min, max, start=None, num=None):
        return self._bylex("ZRANGEBYLEX", name, min, max, start, num)

    def zrevrangebylex(self, name, max, min, start=None, num=None):
        return self._bylex("ZREVRANGEBYLEX", name, max, min, start, num)

    def _bylex(self, command, name, a, b, start, num):
        if (start is None) != (num is None):
            raise DataError("``start`` and ``num`` must both be specified")
        pieces = [command, name, a, b]
        if start is not None:
            pieces += ["LIMIT", start, num]
        return self.execute_command(*pieces)

    def zaddoption(self, name, option=None, *args, **kwargs):
        """ZADD with options as one string: zaddoption('z', 'NX CH',
        1.1, 'a', b=2.2)."""
        options = {o.upper() for o in (option or "").split()}
        if not options:
            raise RedisError("ZADDOPTION must take options")
        if options - {"NX", "XX", "CH", "INCR"}:
            raise RedisError("ZADD only takes XX, NX, CH, or INCR")
        if {"NX", "XX"} <= options:
            raise RedisError("ZADD only takes one of XX or NX")
        return self.zadd(name, *args, **{o.lower(): True for o in options},
                         **kwargs)

    def georadius(self, name, longitude, latitude, radius, unit=None,
                  withdist=False, withcoord=False, withhash=False,
                  count=None, sort=None, store=None, store_dist=None):
        return self._georadius("GEORADIUS", [name, longitude, latitude],
                               radius, unit, withdist, withcoord, withhash,
                               count, sort, store, store_dist)

    def georadiusbymember(self, name, member, radius, unit=None,
                          withdist=False, withcoord=False, withhash=False,
                          count=None, sort=None, store=None,
                          store_dist=None):
        return self._georadius("GEORADIUSBYMEMBER", [name, member], radius,
                               unit, withdist, withcoord, withhash, count,
                               sort, store, store_dist)

    def _georadius(self, command, center, radius, unit, withdist, withcoord,
                   withhash, count, sort, store, store_dist):
        if unit and unit not in ("m", "km", "mi", "ft"):
            raise RedisError("GEORADIUS invalid unit")
        if sort and sort not in ("ASC", "DESC"):
            raise RedisError("GEORADIUS invalid sort")
        if store and store_dist:
            raise RedisError("GEORADIUS store and store_dist cant be set "
                             "together")
        pieces = [command, *center, radius, unit or "m"]
        pieces += [t.upper() for t, on in (("withdist", withdist),
                                           ("withcoord", withcoord),
                                           ("withhash", withhash)) if on]
        if count:
            pieces += ["COUNT", count]
        if sort:
            pieces.append(sort)
        if store:
            pieces += ["STORE", store]
        if store_dist:
            pieces += ["STOREDIST", store_dist]
        return self.execute_command(*pieces, withdist=withdist,
                                    withcoord=withcoord, withhash=withhash,
                                    store=store, store_dist=store_dist)

    def zrange(self, name, start, end, desc=False, withscores=False,
               score_cast_func=float):
        if desc:
            return self.zrevrange(name, start, end, withscores,
                                  score_cast_func)
        pieces = ["ZRANGE", name, start, end]
        if withscores:
            pieces.append("WITHSCORES")
        return self.execute_command(*pieces, withscores=withscores,
                                    score_cast_func=score_cast_func)

    def zrevrange(self, name, start, end, withscores=False,
                  score_cast_func=float):
        pieces = ["ZREVRANGE", name, start, end]
        if withscores:
            pieces.append("WITHSCORES")
        return self.execute_command(*pieces, withscores=withscores,
                                    score_cast_func=score_cast_func)

    def zrangebyscore(self, name, min, max, start=None, num=None,
                      withscores=False, score_cast_func=float):
        pieces = ["ZRANGEBYSCORE", name, min, max]
        if start is not None and num is not None:
            pieces += ["LIMIT", start, num]
        if withscores:
            pieces.append("WITHSCORES")
        return self.execute_command(*pieces, withscores=withscores,
                                    score_cast_func=score_cast_func)

    def zrevrangebyscore(self, name, max, min, start=None, num=None,
                         withscores=False, score_cast_func=float):
        pieces = ["ZREVRANGEBYSCORE", name, max, min]
        if start is not None and num is not None:
            pieces += ["LIMIT", start, num]
        if withscores:
            pieces.append("WITHSCORES")
        return self.execute_command(*pieces, withscores=withscores,
                                    score_cast_func=score_cast_func)

    def _zstore(self, command, dest, keys, aggregate=None):
        pieces = [command, dest, len(keys)]
        if isinstance(keys, dict):
            pieces += list(keys.keys()) + ["WEIGHTS"] + list(keys.values())
        else:
            pieces += list(keys)
        if aggregate:
            pieces += ["AGGREGATE", aggregate]
        return self.execute_command(*pieces)

    def zinterstore(self, dest, keys, aggregate=None):
        return self._zstore("ZINTERSTORE", dest, keys, aggregate)

    def zunionstore(self, dest, keys, aggregate=None):
        return self._zstore("ZUNIONSTORE", dest, keys, aggregate)

    def hset(self, name, key=None, value=None, mapping=None):
        pieces = ["HSET", name]
        if key is not None:
            pieces += (key, value)
        if mapping:
            pieces += _flatten(mapping)
        return self.execute_command(*pieces)

    def mset(self, *args, **kwargs):
        """MSET from one dict or from keywords (or both)."""
        return self.execute_command("MSET", *_flatten(_mapping(
            "MSET", args, kwargs)))

    def msetnx(self, *args, **kwargs):
        """MSETNX from one dict or from keywords (or both)."""
        return self.execute_command("MSETNX", *_flatten(_mapping(
            "MSETNX", args, kwargs)))

    def sort(self, name, start=None, num=None, by=None, get=None, desc=False,
             alpha=False, store=None, groups=False):
        """SORT; with ``groups=True`` and two or more ``get`` patterns the
        reply is a list of tuples, one value per pattern."""
        if groups and (not get or isinstance(get, (bytes, str)) or
                       len(get) < 2):
            raise DataError('when using "groups" the "get" argument must be '
                            'specified and contain at least two keys')
        pieces = ["SORT", name]
        if by is not None:
            pieces += ["BY", by]
        if start is not None and num is not None:
            pieces += ["LIMIT", start, num]
        if get is not None:
            for g in [get] if isinstance(get, (bytes, str)) else get:
                pieces += ["GET", g]
        if desc:
            pieces.append("DESC")
        if alpha:
            pieces.append("ALPHA")
        if store is not None:
            pieces += ["STORE", store]
        return self.execute_command(*pieces,
                                    groups=len(get) if groups else None)

    def scan(self, cursor=0, match=None, count=None):
        pieces = ["SCAN", cursor]
        if match is not None:
            pieces += ["MATCH", match]
        if count is not None:
            pieces += ["COUNT", count]
        return self.execute_command(*pieces)

    def sscan(self, name, cursor=0, match=None, count=None):
        pieces = ["SSCAN", name, cursor]
        if match is not None:
            pieces += ["MATCH", match]
        if count is not None:
            pieces += ["COUNT", count]
        return self.execute_command(*pieces)

    def hscan(self, name, cursor=0, match=None, count=None):
        pieces = ["HSCAN", name, cursor]
        if match is not None:
            pieces += ["MATCH", match]
        if count is not None:
            pieces += ["COUNT", count]
        return self.execute_command(*pieces)

    def zscan(self, name, cursor=0, match=None, count=None,
              score_cast_func=float):
        pieces = ["ZSCAN", name, cursor]
        if match is not None:
            pieces += ["MATCH", match]
        if count is not None:
            pieces += ["COUNT", count]
        return self.execute_command(*pieces, score_cast_func=score_cast_func)

    async def scan_iter(self, match=None, count=None):
        cursor = None
        while cursor != 0:
            cursor, data = await self.scan(cursor=cursor or 0, match=match,
                                           count=count)
            for item in data:
                yield item

    async def sscan_iter(self, name, match=None, count=None):
        cursor = None
        while cursor != 0:
            cursor, data = await self.sscan(name, cursor=cursor or 0,
                                            match=match, count=count)
            for item in data:
                yield item

    async def hscan_iter(self, name, match=None, count=None):
        cursor = None
        while cursor != 0:
            cursor, data = await self.hscan(name, cursor=cursor or 0,
                                            match=match, count=count)
            for item in data.items():
                yield item

    async def zscan_iter(self, name, match=None, count=None,
                         score_cast_func=float):
        cursor = None
        while cursor != 0:
            cursor, data = await self.zscan(name, cursor=cursor or 0,
                                            match=match, count=count,
                                            score_cast_func=score_cast_func)
            for item in data:
                yield item

    def bitfield(self, key, *operations):
        """BITFIELD key. Without operations, the documented builder:
        ``await r.bitfield(key).set('i8', 0, 100).get('u4', 0).exc()``;
        with operations as tuples (('GET', 'u8', 0), ('SET', 'i8', 0,
        100), ('INCRBY', 'u2', 100, 1), ('OVERFLOW', 'SAT')), the command
        at once."""
        if not operations:
            return BitField(self, key)
        pieces = ["BITFIELD", key]
        for op in operations:
            pieces += list(op)
        return self.execute_command(*pieces)

    def blpop(self, keys, timeout=0):
        keys = [keys] if isinstance(keys, (bytes, str)) else list(keys)
        return self.execute_command("BLPOP", *keys, timeout or 0)

    def brpop(self, keys, timeout=0):
        keys = [keys] if isinstance(keys, (bytes, str)) else list(keys)
        return self.execute_command("BRPOP", *keys, timeout or 0)

    async def shutdown(self):
        """SHUTDOWN: None once the server has gone (the connection closing
        is its answer), RedisError if it is still there."""
        try:
            await self.execute_command("SHUTDOWN")
        except ConnectionError:
            return None
        raise RedisError("SHUTDOWN seems to have failed.")

    def client_reply(self, reply):
        raise DataError("CLIENT REPLY is not supported on a multiplexed "
                        "connection")

    # ---- streams (the documented signatures) ----------------------------

    def xadd(self, name, entry, max_len=None, stream_id="*",
             approximate=True):
        pieces = ["XADD", name]
        if max_len is not None and int(max_len) > 0:
            pieces.append("MAXLEN")
            if approximate:
                pieces.append("~")
            pieces.append(max_len)
        pieces.append(stream_id)
        pieces += _flatten(entry)
        return self.execute_command(*pieces)

    def xrange(self, name, start="-", end="+", count=None):
        pieces = ["XRANGE", name, start, end]
        if count is not None:
            pieces += ["COUNT", count]
        return self.execute_command(*pieces)

    def xrevrange(self, name, start="+", end="-", count=None):
        pieces = ["XREVRANGE", name, start, end]
        if count is not None:
            pieces += ["COUNT", count]
        return self.execute_command(*pieces)

    def xread(self, count=None, block=None, **streams):
        pieces = ["XREAD"]
        if count is not None:
            pieces += ["COUNT", count]
        if block is not None:
            pieces += ["BLOCK", block]
        pieces.append("STREAMS")
        pieces += list(streams.keys()) + list(streams.values())
        return self.execute_command(*pieces)

    def xreadgroup(self, group, consumer_id, count=None, block=None,
                   **streams):
        pieces = ["XREADGROUP", "GROUP", group, consumer_id]
        if count is not None:
            pieces += ["COUNT", count]
        if block is not None:
            pieces += ["BLOCK", block]
        pieces.append("STREAMS")
        pieces += list(streams.keys()) + list(streams.values())
        return self.execute_command(*pieces)

    def xtrim(self, name, max_len, approximate=True):
        pieces = ["XTRIM", name, "MAXLEN"]
        if approximate:
            pieces.append("~")
        pieces.append(max_len)
        return self.execute_command(*pieces)

    def xpending_range(self, name, group, start="-", end="+", count=-1,
                       consumer=None):
        pieces = ["XPENDING", name, group, start, end, count]
        if consumer is not None:
            pieces.append(consumer)
        return self.execute_command(*pieces)

    def xclaim(self, name, group, consumer, min_idle_time, *stream_ids):
        return self.execute_command("XCLAIM", name, group, consumer,
                                    min_idle_time, *stream_ids)


for _name, _fn in GENERATED.items():
    if not hasattr(CommandsMixin, _name):
        setattr(CommandsMixin, _name, _fn)
del _name, _fn
