from aredis import StrictRedis, WatchError
r = StrictRedis()

async def example():
    await r.set('OUR-SEQUENCE-KEY', 0)
    async with await r.pipeline() as pipe:
        while 1:
            try:
                # put a WATCH on the key that holds our sequence value
                await pipe.watch('OUR-SEQUENCE-KEY')
                # after WATCHing, the pipeline is put into immediate execution
                # mode until we tell it to start buffering commands again.
                # this allows us to get the current value of our sequence
                current_value = await pipe.get('OUR-SEQUENCE-KEY')
                next_value = int(current_value) + 1
                # now we can put the pipeline back into buffered mode with MULTI
                pipe.multi()
                pipe.set('OUR-SEQUENCE-KEY', next_value)
                # and finally, execute the pipeline (the set command)
                await pipe.execute()
                # if a WatchError wasn't raised during execution, everything
                # we just did happened atomically.
                break
            except WatchError:
                # another client must have changed 'OUR-SEQUENCE-KEY' between
                # the time we started WATCHing it and the pipeline's execution.
                # our best bet is to just retry.
                continue
