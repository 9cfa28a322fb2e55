from aredis.sentinel import Sentinel
sentinel = Sentinel([('localhost', 26379)], stream_timeout=0.1)
await sentinel.discover_master('mymaster')
await sentinel.discover_slaves('mymaster')
master = sentinel.master_for('mymaster', stream_timeout=0.1)
slave = sentinel.slave_for('mymaster', stream_timeout=0.1)
await master.set('foo', 'bar')
import asyncio
await asyncio.sleep(0.5)  # replication is asynchronous
print(await slave.get('foo'))
