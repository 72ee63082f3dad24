// BATCHED update cost per call from JS: wall and CPU (process.cpuUsage) per
// call, median of --rounds rounds, for the bench's turn (3 field groups, 9
// values) and a one-group update. Runs under Node or Bun.
//   node bench/batched.mjs [--calls N] [--rounds N] [--sessions N]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');
const { Store } = require('../lib/index.js');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i < 0 ? def : Number(process.argv[i + 1]);
}
const calls = arg('--calls', 200000);
const rounds = arg('--rounds', 5);
const sessions = arg('--sessions', 1000);

const turn = (i) => ({
  calibration: { last_layer: i % 5, last_known_input: BigInt(1000 + i), last_turn_at: BigInt(1700000000000 + i), bust_rate_ema: 0.1 },
  cost: { conversation_cost: i * 1e-4, conversation_turns: BigInt(i), cache_read_tokens: BigInt(i * 10) },
  warmup: { last_warmup_at_ms: BigInt(1700000000000 + i), warmup_count: i % 9 },
});
const oneGroup = (i) => ({ warmup: { last_warmup_at_ms: BigInt(1700000000000 + i), warmup_count: i % 9 } });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walstate-batched-'));
const store = await Store.open(dir, {
  proto: path.join(repo, 'proto', 'example', 'gateway.proto'),
  includeDirs: [repo],
  message: 'walstate.example.GatewaySession',
  flushIntervalMs: 30000,
  backgroundThread: false,
});
const ids = Array.from({ length: sessions }, (_, i) => `s${i}`);
const results = {};
for (const [name, make] of [['turn', turn], ['oneGroup', oneGroup]]) {
  const values = Array.from({ length: 1000 }, (_, i) => make(i));
  for (let i = 0; i < sessions; i++) store.update(ids[i], values[i % 1000]);
  const wall = [];
  const cpu = [];
  for (let r = 0; r < rounds; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) store.update(ids[i % sessions], values[i % 1000]);
    const t1 = process.hrtime.bigint();
    const c1 = process.cpuUsage(c0);
    wall.push(Number(t1 - t0) / 1e3 / calls);
    cpu.push((c1.user + c1.system) / calls);
  }
  results[name] = { wallUs: median(wall), cpuUs: median(cpu), wallRounds: wall.map((x) => +x.toFixed(2)), cpuRounds: cpu.map((x) => +x.toFixed(2)) };
}
store.closeSync();
fs.rmSync(dir, { recursive: true, force: true });
const runtime = typeof process.versions.bun === 'string' ? `bun ${process.versions.bun}` : `node ${process.versions.node}`;
process.stdout.write(`${JSON.stringify({ runtime, calls, rounds, loadavg: os.loadavg()[0], ...results })}\n`);
