// ioredis_bench.js: aredis-benchmark's SET, GET and KEYS work with
// ioredis (Node.js), for bench/compare.sh, which installs ioredis with npm
// into a scratch folder and sets NODE_PATH to it.
//
//   node bench/ioredis_bench.js -p PORT [-h HOST] [--dbnum N] [-c CONNS]
//        [-P W] [-n N] [-d BYTES] [-r KEYS] [-t set,get,keys] [--prefix S]
//
// The same keys (PREFIX key:%012d, random below -r), values (-d bytes of
// 'x'), W commands in flight per connection with each completion sending
// the next, the same warm-up PING before timing, and JSON in
// aredis-benchmark's shape (latencies exact here: sorted, not bucketed;
// CPU from process.cpuUsage()). ioredis runs with its defaults.
'use strict';
const Redis = require('ioredis');

const cfg = { host: '127.0.0.1', port: 6379, db: 0, c: 1, w: 1, n: 10000,
              d: 3, r: 0, tests: ['set', 'get'], prefix: '' };
const a = process.argv.slice(2);
for (let i = 0; i < a.length; i++) {
  const v = a[i + 1];
  switch (a[i]) {
    case '-h': cfg.host = v; i++; break;
    case '-p': cfg.port = +v; i++; break;
    case '--dbnum': cfg.db = +v; i++; break;
    case '-c': cfg.c = +v; i++; break;
    case '-P': cfg.w = +v; i++; break;
    case '-n': cfg.n = +v; i++; break;
    case '-d': cfg.d = +v; i++; break;
    case '-r': cfg.r = +v; i++; break;
    case '-t': cfg.tests = v.split(','); i++; break;
    case '--prefix': cfg.prefix = v; i++; break;
    case '--json': case '-q': break;
    default:
      process.stderr.write(`ioredis_bench: unknown option '${a[i]}'\n`);
      process.exit(2);
  }
}
const value = 'x'.repeat(cfg.d);
const key = () => cfg.prefix + 'key:' +
  String(cfg.r > 0 ? Math.floor(Math.random() * cfg.r) : 0).padStart(12, '0');

async function runTest(test) {
  const w = test === 'keys' ? 1 : cfg.w;
  const conns = [];
  let t0 = process.hrtime.bigint();
  let cpu0 = process.cpuUsage();
  for (let i = 0; i < cfg.c; i++)
    conns.push(new Redis({ host: cfg.host, port: cfg.port, db: cfg.db,
                           lazyConnect: test === 'keys' }));
  if (test !== 'keys') {
    await Promise.all(conns.map((c) => c.ping()));
    t0 = process.hrtime.bigint();
    cpu0 = process.cpuUsage();
  }
  const lat = new Float64Array(cfg.n);
  let issued = 0;
  let done = 0;
  let errors = 0;
  const one = (c) => {
    if (issued >= cfg.n) return Promise.resolve();
    issued++;
    const s = process.hrtime.bigint();
    const p = test === 'set' ? c.set(key(), value)
      : test === 'get' ? c.get(key()) : c.keys('*');
    return p.catch(() => { errors++; }).then(() => {
      lat[done++] = Number(process.hrtime.bigint() - s) / 1e6;
      return one(c);
    });
  };
  const lanes = [];
  for (const c of conns)
    for (let j = 0; j < w; j++) lanes.push(one(c));
  await Promise.all(lanes);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  await Promise.all(conns.map((c) => c.quit()));
  lat.sort();
  const q = (x) => lat[Math.min(lat.length - 1,
                                Math.max(0, Math.ceil(x * lat.length) - 1))];
  // A CDF of at most ~400 points, like aredis-benchmark's buckets.
  const cdf = [];
  const step = Math.max(1, Math.floor(lat.length / 400));
  for (let i = step - 1; i < lat.length; i += step)
    cdf.push([lat[i], (i + 1) / lat.length]);
  if (cdf.length === 0 || cdf[cdf.length - 1][1] !== 1)
    cdf.push([lat[lat.length - 1], 1]);
  return {
    test: test.toUpperCase(), requests: done, errors, seconds: secs,
    ops_per_sec: done / secs,
    latency_ms: { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999),
                  max: lat[lat.length - 1] },
    cpu_s: cpuS, cpu_s_per_million: cpuS * 1e6 / done, cdf,
  };
}

(async () => {
  const out = { tool: 'ioredis_bench',
                client: 'ioredis ' + require('ioredis/package.json').version,
                config: { connections: cfg.c, inflight: cfg.w,
                          requests: cfg.n, datasize: cfg.d,
                          keyspace: cfg.r },
                tests: [] };
  for (const t of ['set', 'get', 'keys'])
    if (cfg.tests.includes(t)) out.tests.push(await runTest(t));
  process.stdout.write(JSON.stringify(out) + '\n');
})().catch((e) => {
  process.stderr.write(`ioredis_bench: ${e.message}\n`);
  process.exit(1);
});
