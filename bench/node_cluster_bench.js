// node_cluster_bench.js: bench_cluster's seq and set work with the Node.js
// cluster clients, for bench/cluster.sh, which installs them with npm into
// a scratch folder and sets NODE_PATH to it.
//
//   node bench/node_cluster_bench.js --client ioredis|ioredis-auto|glide
//        --seeds H:P,H:P --keys FILE --mode seq|set [-n N] [-w W]
//
// ioredis is Redis.Cluster with its defaults (ioredis-auto: with
// enableAutoPipelining); glide is @valkey/valkey-glide's GlideClusterClient.
// The keys are bench_cluster's table (one key per slot, --keys FILE), so
// command i uses slot i mod 16384 as there; values are 16 bytes; W
// commands in flight, each completion sending the next; a warm-up of
// min(N, 65536) commands first. Prints one line of key=value pairs in
// bench_cluster's shape (CPU from process.cpuUsage(): every thread of the
// process, so glide's Rust core counts too). Any error exits non-zero.
'use strict';
const fs = require('fs');

const cfg = { client: 'ioredis', seeds: '', keys: '', mode: 'seq', n: 100000,
              w: 1 };
const a = process.argv.slice(2);
for (let i = 0; i < a.length; i += 2) {
  const k = a[i].replace(/^-+/, '');
  if (!(k in cfg) || a[i + 1] === undefined) {
    process.stderr.write(`node_cluster_bench: bad option '${a[i]}'\n`);
    process.exit(2);
  }
  cfg[k] = typeof cfg[k] === 'number' ? +a[i + 1] : a[i + 1];
}
const keys = fs.readFileSync(cfg.keys, 'utf8').split('\n').filter(Boolean);
if (keys.length !== 16384) throw new Error('the key table must have 16384 keys');
const seeds = cfg.seeds.split(',').map((s) => {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: +s.slice(i + 1) };
});
const value = 'v'.repeat(16);
const set = cfg.mode === 'set';
const w = set ? cfg.w : 1;

async function connect() {
  if (cfg.client === 'glide') {
    const { GlideClusterClient } = require('@valkey/valkey-glide');
    const c = await GlideClusterClient.createClient({
      addresses: seeds, requestTimeout: 5000,
      inflightRequestsLimit: Math.max(1000, 2 * w) });
    return { get: (k) => c.get(k), set: (k, v) => c.set(k, v),
             close: () => c.close(), version: 'glide' };
  }
  const Redis = require('ioredis');
  const c = new Redis.Cluster(seeds, {
    enableAutoPipelining: cfg.client === 'ioredis-auto' });
  await new Promise((res, rej) => { c.once('ready', res); c.once('error', rej); });
  return { get: (k) => c.get(k), set: (k, v) => c.set(k, v),
           close: () => c.disconnect(), version: 'ioredis' };
}

async function run(c, n) {
  let issued = 0;
  const one = () => {
    if (issued >= n) return Promise.resolve();
    const k = keys[issued++ % 16384];
    return (set ? c.set(k, value) : c.get(k)).then(one);
  };
  const lanes = [];
  for (let j = 0; j < w; j++) lanes.push(one());
  await Promise.all(lanes);
}

(async () => {
  const c = await connect();
  await run(c, Math.min(cfg.n, 4 * 16384));
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  await run(c, cfg.n);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const u = process.cpuUsage(cpu0);
  const cpu = (u.user + u.system) / 1e6;
  process.stdout.write(
    `mode=${cfg.mode} w=${w} n=${cfg.n} ops_per_sec=${(cfg.n / secs).toFixed(0)} ` +
    `cpu_s=${cpu.toFixed(4)} cpu_us_per_op=${(cpu * 1e6 / cfg.n).toFixed(3)} ` +
    `cpu_s_per_million=${(cpu * 1e6 / cfg.n).toFixed(4)}\n`);
  await c.close();
  process.exit(0);
})().catch((e) => {
  process.stderr.write(`node_cluster_bench: ${e && e.message}\n`);
  process.exit(1);
});
