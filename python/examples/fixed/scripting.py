import aredis as redis
r = redis.StrictRedis()
lua = """
local value = redis.call('GET', KEYS[1])
value = tonumber(value)
return value * ARGV[1]"""
multiply = r.register_script(lua)
await r.set('foo', 2)
await multiply.execute(keys=['foo'], args=[5])
r2 = redis.StrictRedis(db=1)
await r2.set('foo', 3)
await multiply.execute(keys=['foo'], args=[5], client=r2)
pipe = await r.pipeline()
await pipe.set('foo', 5)
await multiply(keys=['foo'], args=[5], client=pipe)
await pipe.execute()
