// walstate's binding against what a TypeScript gateway uses today: one SQLite
// row per session (WAL, synchronous=FULL), identity written at once, the rest
// kept in a Map and written by a 30 s loop over dirty sessions. Runs under
// Node (peer: better-sqlite3) or Bun (peer: bun:sqlite); prints one JSON
// object. bench/run.sh runs both and writes the table.
//
//   node bench.mjs [--durable N] [--batched N] [--sessions N] [--dirty N] [--rounds N]
// bench/run.sh runs it --rounds 1 at a time, Node and Bun alternating.
//   node bench.mjs --restart-child <walstate|sqlite> <dir>   (internal)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');
const { Store } = require('../lib/index.js');
const isBun = typeof process.versions.bun === 'string';
const runtime = isBun ? `bun ${process.versions.bun}` : `node ${process.versions.node}`;

const storeOptions = {
  proto: path.join(repo, 'proto', 'example', 'gateway.proto'),
  includeDirs: [repo],
  message: 'walstate.example.GatewaySession',
  flushIntervalMs: 30000,
};

async function openSqlite(file) {
  if (isBun) {
    const { Database } = await import('bun:sqlite');
    const db = new Database(file);
    return { db, peer: 'bun:sqlite', exec: (s) => db.exec(s), prepare: (s) => db.prepare(s), tx: (fn) => db.transaction(fn), close: () => db.close() };
  }
  const Database = require('better-sqlite3');
  const db = new Database(file);
  return { db, peer: `better-sqlite3 ${require('better-sqlite3/package.json').version}`, exec: (s) => db.exec(s), prepare: (s) => db.prepare(s), tx: (fn) => db.transaction(fn), close: () => db.close() };
}

// The seed's table: identity columns plus JSON text per field group.
async function seedDb(file) {
  const s = await openSqlite(file);
  s.exec('PRAGMA journal_mode=WAL');
  s.exec('PRAGMA synchronous=FULL');
  s.exec(`CREATE TABLE IF NOT EXISTS session_state (
    id TEXT PRIMARY KEY, fingerprint TEXT, header_session_id TEXT, header_name TEXT,
    calibration TEXT, cost TEXT, warmup TEXT)`);
  s.exec('CREATE INDEX IF NOT EXISTS by_header ON session_state(header_session_id)');
  s.upsertIdentity = s.prepare(`INSERT INTO session_state (id, fingerprint, header_session_id, header_name)
    VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET fingerprint=excluded.fingerprint,
    header_session_id=excluded.header_session_id, header_name=excluded.header_name`);
  s.writeGroups = s.prepare(`INSERT INTO session_state (id, calibration, cost, warmup) VALUES (?, ?, ?, ?)
    ON CONFLICT(id) DO UPDATE SET calibration=excluded.calibration, cost=excluded.cost, warmup=excluded.warmup`);
  return s;
}

const made = []; // removed at the end of main()
const fresh = (name) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `walstate-nbench-${name}-`));
  made.push(d);
  return d;
};
const ns = () => process.hrtime.bigint();
const pct = (xs, p) => {
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))];
};
const median = (xs) => pct(xs, 50);
const identity = (i) => ({ fingerprint: `fp-${i % 97}`, header_session_id: `hdr-${i}`, header_name: 'x-session-id' });
const turn = (i) => ({
  calibration: { last_layer: i % 5, last_known_input: BigInt(1000 + i), last_turn_at: BigInt(1700000000000 + i), bust_rate_ema: 0.1 },
  cost: { conversation_cost: i * 1e-4, conversation_turns: BigInt(i), cache_read_tokens: BigInt(i * 10) },
  warmup: { last_warmup_at_ms: BigInt(1700000000000 + i), warmup_count: i % 9 },
});
// JSON of a turn for SQLite (bigint is not JSON): what the seed stores.
const turnJson = (t) => JSON.stringify(t, (k, v) => (typeof v === 'bigint' ? Number(v) : v));

// Durable identity writes, one at a time: the event loop's share (the
// synchronous part of the call) and the time until durable.
async function durableWalstate(n) {
  const store = await Store.open(fresh('durable'), storeOptions);
  const blocked = [];
  const latency = [];
  for (let i = 0; i < n; i++) {
    const t0 = ns();
    const p = store.update(`s${i}`, identity(i));
    const t1 = ns();
    await p;
    const t2 = ns();
    blocked.push(Number(t1 - t0) / 1e3);
    latency.push(Number(t2 - t0) / 1e3);
  }
  await store.close();
  return { blocked, latency };
}

async function durableSqlite(n) {
  const s = await seedDb(path.join(fresh('durable-sql'), 'state.db'));
  const blocked = [];
  for (let i = 0; i < n; i++) {
    const id = identity(i);
    const t0 = ns();
    s.upsertIdentity.run(`s${i}`, id.fingerprint, id.header_session_id, id.header_name);
    blocked.push(Number(ns() - t0) / 1e3);
  }
  s.close();
  return { blocked, latency: blocked };
}

// BATCHED turn updates: walstate's update() against the seed's Map + dirty set.
async function batchedWalstate(n, sessions) {
  const store = await Store.open(fresh('batched'), { ...storeOptions, backgroundThread: false });
  const turns = Array.from({ length: 1000 }, (_, i) => turn(i));
  for (let i = 0; i < sessions; i++) store.update(`s${i}`, turns[i % 1000]);
  const ids = Array.from({ length: sessions }, (_, i) => `s${i}`);
  const c0 = process.cpuUsage();
  const t0 = ns();
  for (let i = 0; i < n; i++) store.update(ids[i % sessions], turns[i % 1000]);
  const wall = Number(ns() - t0) / n;
  const c = process.cpuUsage(c0);
  store.closeSync();
  return { wall, cpu: ((c.user + c.system) * 1e3) / n };
}

function batchedSeed(n, sessions) {
  const map = new Map();
  const dirty = new Set();
  const turns = Array.from({ length: 1000 }, (_, i) => turn(i));
  for (let i = 0; i < sessions; i++) map.set(`s${i}`, {});
  const ids = Array.from({ length: sessions }, (_, i) => `s${i}`);
  const t0 = ns();
  for (let i = 0; i < n; i++) {
    const id = ids[i % sessions];
    const t = turns[i % 1000];
    const row = map.get(id);
    row.calibration = t.calibration;
    row.cost = t.cost;
    row.warmup = t.warmup;
    dirty.add(id);
  }
  return Number(ns() - t0) / n;
}

// The 30 s loop over `dirty` sessions: how long the event loop is blocked.
async function flushWalstate(dirty) {
  const store = await Store.open(fresh('flush'), { ...storeOptions, backgroundThread: false });
  for (let i = 0; i < dirty; i++) store.update(`s${i}`, turn(i));
  const t0 = ns();
  const p = store.flush();
  const blocked = Number(ns() - t0) / 1e6;
  await p;
  const total = Number(ns() - t0) / 1e6;
  await store.close();
  return { blocked, total };
}

async function flushSqlite(dirty) {
  const s = await seedDb(path.join(fresh('flush-sql'), 'state.db'));
  const rows = Array.from({ length: dirty }, (_, i) => turn(i));
  const write = s.tx((list) => {
    for (let i = 0; i < list.length; i++) {
      s.writeGroups.run(`s${i}`, turnJson(list[i].calibration), turnJson(list[i].cost), turnJson(list[i].warmup));
    }
  });
  const t0 = ns();
  write(rows);
  const blocked = Number(ns() - t0) / 1e6;
  s.close();
  return { blocked, total: blocked };
}

// Restart to ready, each in a fresh process: walstate's Open, and the seed's
// open + SELECT * into a Map (parsing the JSON groups).
async function populate(sessions) {
  const wdir = fresh('restart');
  const store = await Store.open(wdir, { ...storeOptions, backgroundThread: false });
  for (let i = 0; i < sessions; i++) {
    store.update(`s${i}`, { ...identity(i), ...turn(i) }, { durability: 'BATCHED' });
  }
  await store.close();
  // The same sessions after a snapshot (compact()), as a store that has run
  // for a while holds them: a fresh store's first restart replays its log.
  const cdir = fresh('restart-snap');
  for (const f of fs.readdirSync(wdir)) fs.copyFileSync(path.join(wdir, f), path.join(cdir, f));
  const snap = await Store.open(cdir, { ...storeOptions, backgroundThread: false });
  await snap.compact();
  await snap.close();
  const sfile = path.join(fresh('restart-sql'), 'state.db');
  const s = await seedDb(sfile);
  s.tx(() => {
    for (let i = 0; i < sessions; i++) {
      const id = identity(i);
      const t = turn(i);
      s.upsertIdentity.run(`s${i}`, id.fingerprint, id.header_session_id, id.header_name);
      s.writeGroups.run(`s${i}`, turnJson(t.calibration), turnJson(t.cost), turnJson(t.warmup));
    }
  })();
  s.close();
  return { wdir, cdir, sfile };
}

function restartInChild(kind, target) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--restart-child', kind, target], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`restart child ${kind} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function restartChild(kind, target) {
  // Modules are loaded before the clock starts, for both: walstate's addon
  // at the top of this file, the SQLite binding here.
  if (kind !== 'walstate') await openSqlite(':memory:');
  const t0 = ns();
  let count;
  if (kind === 'walstate') {
    const store = await Store.open(target, storeOptions);
    count = store.stats().sessions;
    const ms = Number(ns() - t0) / 1e6;
    store.lookup('header_session_id', 'hdr-1'); // ready: the index answers
    process.stdout.write(`${JSON.stringify({ ms, count })}\n`);
    store.closeSync();
    return;
  }
  const s = await openSqlite(target);
  const map = new Map();
  for (const row of s.prepare('SELECT * FROM session_state').all()) {
    map.set(row.id, {
      fingerprint: row.fingerprint, header_session_id: row.header_session_id, header_name: row.header_name,
      calibration: JSON.parse(row.calibration), cost: JSON.parse(row.cost), warmup: JSON.parse(row.warmup),
    });
  }
  count = map.size;
  process.stdout.write(`${JSON.stringify({ ms: Number(ns() - t0) / 1e6, count })}\n`);
  s.close();
}

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i < 0 ? def : Number(process.argv[i + 1]);
}

async function main() {
  if (process.argv[2] === '--restart-child') return restartChild(process.argv[3], process.argv[4]);
  const durable = arg('--durable', 500);
  const batched = arg('--batched', 200000);
  const sessions = arg('--sessions', 100000);
  const dirty = arg('--dirty', 10000);
  const rounds = arg('--rounds', 5);
  const out = { runtime, cpus: os.cpus().length, loadavg: os.loadavg(), rounds: [] };
  let peer;
  // Contestants alternate within each round; medians over rounds.
  for (let r = 0; r < rounds; r++) {
    const w = await durableWalstate(durable);
    const q = await durableSqlite(durable);
    const round = {
      durable: {
        walstate: { blockedP50: pct(w.blocked, 50), blockedMean: w.blocked.reduce((a, b) => a + b) / w.blocked.length, blockedP99: pct(w.blocked, 99), p50: pct(w.latency, 50), p99: pct(w.latency, 99) },
        sqlite: { blockedP50: pct(q.blocked, 50), blockedMean: q.blocked.reduce((a, b) => a + b) / q.blocked.length, blockedP99: pct(q.blocked, 99), p50: pct(q.latency, 50), p99: pct(q.latency, 99) },
      },
      batched: { walstate: await batchedWalstate(batched, 1000), seedMap: batchedSeed(batched, 1000) },
      flush: { walstate: await flushWalstate(dirty), sqlite: await flushSqlite(dirty) },
    };
    out.rounds.push(round);
  }
  const { wdir, cdir, sfile } = await populate(sessions);
  const restart = { walstate: [], walstateSnapshot: [], sqlite: [] };
  for (let r = 0; r < rounds; r++) {
    restart.walstate.push(restartInChild('walstate', wdir).ms);
    restart.sqlite.push(restartInChild('sqlite', sfile).ms);
    restart.walstateSnapshot.push(restartInChild('walstate', cdir).ms);
  }
  peer = (await openSqlite(':memory:')).peer;
  out.peer = peer;
  out.sessions = sessions;
  out.durableWrites = durable;
  out.batchedCalls = batched;
  out.dirty = dirty;
  out.restart = restart;
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

await main();
