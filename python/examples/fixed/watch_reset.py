from aredis import StrictRedis, WatchError
r = StrictRedis()

async def example():
    await r.set('OUR-SEQUENCE-KEY', 0)
    async with await r.pipeline() as pipe:
        while 1:
            try:
                await pipe.watch('OUR-SEQUENCE-KEY')
                current_value = await pipe.get('OUR-SEQUENCE-KEY')
                pipe.multi()
                pipe.set('OUR-SEQUENCE-KEY', int(current_value) + 1)
                await pipe.execute()
                break
            except WatchError:
                continue
            finally:
                await pipe.reset()
