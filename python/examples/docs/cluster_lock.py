async def example():
    client = aredis.StrictRedis()
    await client.flushall()
    lock = client.lock('lalala', lock_class=ClusterLock, timeout=1)
    print(await lock.acquire())
    print(await lock.acquire(blocking=False))
    print(await lock.release())
    print(await lock.acquire())
