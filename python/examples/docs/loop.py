import aredis
import asyncio
loop = asyncio.get_event_loop()
r = aredis.StrictRedis(host='localhost', port=6379, db=0, loop=loop)
