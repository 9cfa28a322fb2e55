// node_cluster_bench.js: bench_cluster's seq, set and fault work with the
// Node.js cluster clients, for bench/cluster.sh, which installs them with
// npm into a scratch folder and sets NODE_PATH to it.
//
//   node bench/node_cluster_bench.js --client ioredis|ioredis-auto|glide
//        --seeds H:P,H:P --keys FILE --mode seq|set [-n N] [-w W]
//   ... --mode fault --fault kill|failover|migrate [--pid P] [--replica H:P]
//        [--affected LO-HI] [--slot S --src H:P --dst H:P [--batch K]]
//        [--after-ms MS]
//
// ioredis is Redis.Cluster with its defaults (ioredis-auto: with
// enableAutoPipelining); glide is @valkey/valkey-glide's GlideClusterClient.
// The keys are bench_cluster's table (one key per slot, --keys FILE), so
// command i uses slot (i * 10007) mod 16384 as there; values are 16 bytes; W
// commands in flight, each completion sending the next; a warm-up of
// min(N, 16384) commands first (one per slot). Prints one line of key=value pairs in
// bench_cluster's shape (CPU from process.cpuUsage(): every thread of the
// process, so glide's Rust core counts too). Any error exits non-zero.
//
// fault: as bench_cluster's (see there): a window-16 SET stream with a 5 s
// deadline per command (ioredis commandTimeout, glide requestTimeout), the
// fault injected after 1 s through plain ioredis connections to the nodes
// (process.kill for kill -9), the replica's ROLE polled every ms, the same
// counts, the same migration (redis-cli --cluster reshard's: --batch keys
// per MIGRATE, back to back; SETSLOT NODE on the target, the source, the
// other primaries) and, for migrate, the window split in halves the same
// way. Errors are named by the error's class and its first word.
'use strict';
const fs = require('fs');

const cfg = { client: 'ioredis', seeds: '', keys: '', mode: 'seq', n: 100000,
              w: 1, fault: '', pid: 0, replica: '', affected: '', slot: -1,
              src: '', dst: '', batch: 10, 'after-ms': 6000, 'warm-ms': 1000 };
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
const addr = (s) => {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: +s.slice(i + 1) };
};
const seeds = cfg.seeds.split(',').map(addr);
const value = 'v'.repeat(16);
const set = cfg.mode !== 'seq';
const w = cfg.mode === 'seq' ? 1 : cfg.w;
// bench_cluster's order of slots: (i * 10007) mod 16384.
const spread = (i) => Number((BigInt(i) * 10007n) % 16384n);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function connect() {
  if (cfg.client === 'glide') {
    const { GlideClusterClient } = require('@valkey/valkey-glide');
    const c = await GlideClusterClient.createClient({
      addresses: seeds, requestTimeout: 5000,
      inflightRequestsLimit: Math.max(1000, 2 * w) });
    return { get: (k) => c.get(k), set: (k, v) => c.set(k, v),
             close: () => c.close() };
  }
  const Redis = require('ioredis');
  const c = new Redis.Cluster(seeds, {
    enableAutoPipelining: cfg.client === 'ioredis-auto',
    redisOptions: cfg.mode === 'fault' ? { commandTimeout: 5000 } : {} });
  await new Promise((res, rej) => { c.once('ready', res); c.once('error', rej); });
  return { get: (k) => c.get(k), set: (k, v) => c.set(k, v),
           close: () => c.disconnect() };
}

async function run(c, n) {
  let issued = 0;
  const one = () => {
    if (issued >= n) return Promise.resolve();
    const k = keys[spread(issued++)];
    return (set ? c.set(k, value) : c.get(k)).then(one);
  };
  const lanes = [];
  for (let j = 0; j < w; j++) lanes.push(one());
  await Promise.all(lanes);
}

async function throughput() {
  const c = await connect();
  await run(c, Math.min(cfg.n, 16384));
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
}

// ---- faults -------------------------------------------------------------------
async function fault() {
  const Redis = require('ioredis');
  const plain = (s) => new Redis({ ...addr(s), lazyConnect: false });
  const migrate = cfg.fault === 'migrate';
  const [lo, hi] = migrate ? [cfg.slot, cfg.slot]
    : cfg.affected.split('-').map(Number);
  const c = await connect();
  await run(c, 16384);
  const t0 = now();
  const rec = [];
  const kinds = new Map();
  const lastOk = [-1, -1], gap = [0, 0], nErr = [0, 0];
  let tFault = -1, tPromoted = -1, tMigEnd = -1, tFirstOkAff = -1;
  let stopping = false, tStopped = -1, inflight = 0, migCounter = 0;
  let nOther = 0;
  let drained;
  const allDone = new Promise((r) => { drained = r; });
  // migrate: cls 1 the migrating slot, 0 the others (each completion sends
  // one of its own half); otherwise (cls -1) the spread order.
  const send = (cls) => {
    const i = rec.length;
    let key, slot;
    if (cls === 1) {
      key = `{${keys[cfg.slot]}}:${migCounter++ % 4096}`;
      slot = cfg.slot;
    } else {
      slot = spread(cls < 0 ? i : nOther++);
      if (cls >= 0 && slot === cfg.slot) slot = spread(nOther++);
      key = keys[slot];
    }
    const r = { sent: now() - t0, done: 0, aff: slot >= lo && slot <= hi ? 1 : 0 };
    rec.push(r);
    inflight++;
    const fin = (err) => {
      const t = now() - t0;
      r.done++;
      inflight--;
      if (err) {
        r.err = true;
        nErr[r.aff]++;
        // A server error by its code (MOVED, CLUSTERDOWN...), anything
        // else by its first words.
        const msg = String(err.message);
        const code = msg.match(/\b(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|Moved|Ask|TryAgain|ClusterDown)\b/);
        const name = `${err.name || 'Error'}:${code ? code[1].toUpperCase()
          : msg.split(/\s+/).slice(0, 3).join('_').replace(/[^A-Za-z0-9_]/g, '')}`;
        const k = kinds.get(name) || [0, 0];
        k[0]++;
        k[1] += r.aff;
        kinds.set(name, k);
      } else {
        if (lastOk[r.aff] >= 0) gap[r.aff] = Math.max(gap[r.aff], t - lastOk[r.aff]);
        lastOk[r.aff] = t;
        if (r.aff && tFault >= 0 && tFirstOkAff < 0 && r.sent >= tFault) tFirstOkAff = t;
      }
      if (r.done > 1) return;
      if (!stopping) send(migrate ? r.aff : -1);
      else if (inflight === 0) drained();
    };
    c.set(key, value).then(() => fin(null), fin);
  };
  for (let j = 0; j < 16; j++) send(migrate ? j & 1 : -1);

  // The fault, from the same process.
  await sleep(cfg['warm-ms']);
  const isMaster = async (r) => (await r.call('ROLE'))[0] === 'master';
  if (migrate) {
    const src = plain(cfg.src), dst = plain(cfg.dst);
    const srcId = await src.call('CLUSTER', 'MYID');
    const dstId = await dst.call('CLUSTER', 'MYID');
    const d = addr(cfg.dst);
    await dst.call('CLUSTER', 'SETSLOT', cfg.slot, 'IMPORTING', srcId);
    await src.call('CLUSTER', 'SETSLOT', cfg.slot, 'MIGRATING', dstId);
    tFault = now() - t0;
    const others = String(await src.call('CLUSTER', 'NODES')).split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f.length > 2 && f[2].includes('master') && !f[2].includes('fail') &&
        f[0] !== srcId && f[0] !== dstId)
      .map((f) => f[1].replace(/[@,].*/, ''));
    for (;;) {
      const ks = await src.call('CLUSTER', 'GETKEYSINSLOT', cfg.slot, cfg.batch);
      if (ks.length === 0) break;
      await src.call('MIGRATE', d.host, d.port, '', 0, 60000, 'KEYS', ...ks);
    }
    await dst.call('CLUSTER', 'SETSLOT', cfg.slot, 'NODE', dstId);
    await src.call('CLUSTER', 'SETSLOT', cfg.slot, 'NODE', dstId);
    for (const o of others) {
      const n = plain(o);
      await n.call('CLUSTER', 'SETSLOT', cfg.slot, 'NODE', dstId);
      n.disconnect();
    }
    tMigEnd = now() - t0;
    src.disconnect();
    dst.disconnect();
  } else {
    const rep = plain(cfg.replica);
    await rep.ping();
    tFault = now() - t0;
    if (cfg.fault === 'kill') process.kill(cfg.pid, 'SIGKILL');
    else await rep.call('CLUSTER', 'FAILOVER');
    const limit = now() + 30000;
    while (!(await isMaster(rep))) {
      if (now() > limit) throw new Error('the replica was not promoted within 30 s');
      await sleep(1);
    }
    tPromoted = now() - t0;
    rep.disconnect();
  }
  await sleep(cfg['after-ms'] - (now() - t0 - (tMigEnd >= 0 ? tMigEnd : tFault)));
  stopping = true;
  tStopped = now() - t0;
  if (inflight > 0) await Promise.race([allDone, sleep(15000)]);
  for (const k of [0, 1])
    if (lastOk[k] >= 0) gap[k] = Math.max(gap[k], tStopped - lastOk[k]);
  let ok = 0, failed = 0, lost = 0, dup = 0;
  for (const r of rec) {
    if (r.done === 0) lost++;
    else if (r.done > 1) dup++;
    if (r.done >= 1 && !r.err) ok++;
    else if (r.done >= 1) failed++;
  }
  const failures = [...kinds].map(([k, v]) => `${k}:${v[0]}(${v[1]})`).join(',') || 'none';
  const rel = (t) => (t >= 0 ? (t - tFault).toFixed(1) : '-1.0');
  process.stdout.write(
    `mode=fault fault=${cfg.fault} sent=${rec.length} ok=${ok} failed=${failed} ` +
    `lost=${lost} duplicated=${dup} failed_affected=${nErr[1]} failed_other=${nErr[0]} ` +
    `failures=${failures} gap_affected_ms=${gap[1].toFixed(1)} gap_other_ms=${gap[0].toFixed(1)} ` +
    `t_fault_ms=${tFault.toFixed(1)} t_promoted_ms=${rel(tPromoted)} ` +
    `t_migration_done_ms=${rel(tMigEnd)} first_ok_affected_ms=${rel(tFirstOkAff)} ` +
    `first_ok_minus_promotion_ms=${tFirstOkAff >= 0 && tPromoted >= 0
      ? (tFirstOkAff - tPromoted).toFixed(1) : '-1.0'}\n`);
  c.close();
}

(cfg.mode === 'fault' ? fault() : throughput()).then(() => process.exit(0), (e) => {
  process.stderr.write(`node_cluster_bench: ${e && e.message}\n`);
  process.exit(1);
});
