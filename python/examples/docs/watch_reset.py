async def example():
    async with await r.pipeline() as pipe:
        while 1:
            try:
                await pipe.watch('OUR-SEQUENCE-KEY')
                ...
                await pipe.execute()
                break
            except WatchError:
                continue
            finally:
                await pipe.reset()
