async def client_side_incr(pipe):
    current_value = await pipe.get('OUR-SEQUENCE-KEY')
    next_value = int(current_value) + 1
    pipe.multi()
    await pipe.set('OUR-SEQUENCE-KEY', next_value)

await r.transaction(client_side_incr, 'OUR-SEQUENCE-KEY')
