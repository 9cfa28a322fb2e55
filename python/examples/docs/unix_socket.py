r = redis.StrictRedis(unix_socket_path='/tmp/redis.sock')
