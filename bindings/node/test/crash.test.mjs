// Crash semantics from JS, as in C++: a child Node process doing IMMEDIATE
// and BATCHED updates is SIGKILLed at a random point; the parent reopens and
// checks that every IMMEDIATE update whose Promise had resolved is there and
// that the BATCHED sessions hold exactly one committed tick's values.
// WALSTATE_NODE_CRASH_CYCLES sets the number of kill cycles (CI: 3;
// bindings/node/scripts/crash_cycles.sh runs 50).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store, gatewayOptions, tempDir } from './helpers.mjs';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash_child.mjs');
const cycles = Number(process.env.WALSTATE_NODE_CRASH_CYCLES ?? 3);
const writers = 6;
const batched = 40;

// Runs the child until it has acknowledged `acks` IMMEDIATE updates, kills
// it, and returns what it acknowledged.
function runAndKill(dir, acks) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir, String(writers), String(batched)],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    const last = new Map();
    let flushed = 0;
    let flushStarted = 0;
    let seen = 0;
    let buf = '';
    let killed = false;
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [what, a, b] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (what === 'ack') {
          last.set(Number(a), Math.max(last.get(Number(a)) ?? 0, Number(b)));
          seen++;
        } else if (what === 'flushed') {
          flushed = Number(a);
        } else if (what === 'flush-start') {
          flushStarted = Number(a);
        }
      }
      if (!killed && seen >= acks) {
        killed = true;
        p.kill('SIGKILL');
      }
    });
    p.on('error', reject);
    p.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child ended by itself (code ${code})`));
      else resolve({ last, flushed, flushStarted, seen });
    });
  });
}

test(`kill -9 loses no acknowledged IMMEDIATE update, BATCHED is one committed tick (${cycles} cycles)`, async () => {
  const dir = tempDir('crash');
  let lost = 0;
  let checked = 0;
  let acked = 0;
  for (let c = 0; c < cycles; c++) {
    const acks = 20 + Math.floor(Math.random() * 300);
    const { last, flushed, flushStarted, seen } = await runAndKill(dir, acks);
    acked += seen;
    const s = await Store.open(dir, { ...gatewayOptions, backgroundThread: false });
    for (const [w, n] of last) {
      const got = Number(s.get(`imm-${w}`)?.header_name ?? '0');
      checked++;
      if (got < n) lost++;
      assert.ok(got >= n, `cycle ${c}: imm-${w} acknowledged seq ${n}, recovered ${got}`);
    }
    const steps = new Set();
    for (let i = 0; i < batched; i++) {
      steps.add(Number(s.get(`bat-${i}`)?.calibration?.last_turn_at ?? 0n));
    }
    assert.equal(steps.size, 1, `cycle ${c}: BATCHED sessions hold steps ${[...steps]}: not one tick`);
    const [step] = steps;
    assert.ok(step >= flushed && step <= flushStarted,
      `cycle ${c}: BATCHED step ${step}, flushed ${flushed}, started ${flushStarted}`);
    assert.equal(s.recoveryReport().problems.filter((p) => p.kind !== 'torn-tail').length, 0);
    await s.close();
  }
  process.stdout.write(`# crash cycles: ${cycles}, acknowledged IMMEDIATE updates: ${acked} (last per session checked: ${checked}), lost: ${lost}\n`);
});
