for message in await p.listen():
    # do something with the message
    pass
