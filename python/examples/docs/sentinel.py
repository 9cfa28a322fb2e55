from redis.sentinel import Sentinel
sentinel = Sentinel([('localhost', 26379)], stream_timeout=0.1)
await sentinel.discover_master('mymaster')
await sentinel.discover_slaves('mymaster')
master = sentinel.master_for('mymaster', stream_timeout=0.1)
slave = sentinel.slave_for('mymaster', stream_timeout=0.1)
master.set('foo', 'bar')
slave.get('foo')
