import os
import aredis as redis
r = redis.StrictRedis(unix_socket_path=os.environ.get('AREDIS_EXAMPLE_UNIX', '/tmp/redis.sock'))
print(await r.ping())
