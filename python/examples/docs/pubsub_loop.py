while True:
    message = await p.get_message()
    if message:
        # do something with the message
        await asyncio.sleep(0.001) # be nice to the system :)
