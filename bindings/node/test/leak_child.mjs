// Run by test/leak.test.mjs with --expose-gc: after a warm-up, N more
// updates (BATCHED, a few IMMEDIATE) and gets over the same sessions must not
// grow the JS heap, external memory, RSS or the count of active handles.
// Prints one JSON line.
import { Store, gatewayOptions, tempDir } from './helpers.mjs';

const n = Number(process.argv[2]);
const sessions = 1000;
const store = await Store.open(tempDir('leak'), { ...gatewayOptions, flushIntervalMs: 50 });

async function round(count) {
  for (let i = 0; i < count; i++) {
    const id = `s${i % sessions}`;
    store.update(id, { cost: { conversation_cost: i * 0.01, conversation_turns: BigInt(i) }, calibration: { last_layer: i % 5 } });
    if (i % 1000 === 0) await store.update(id, { fingerprint: `fp${i % 7}` });
    if (i % 10 === 0) store.get(id);
  }
  await store.flush();
}

function sample() {
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external, rss: m.rss, handles: process.getActiveResourcesInfo().length };
}

await round(Math.min(n, 100000));
const before = sample();
await round(n);
const after = sample();
await store.close();
process.stdout.write(`${JSON.stringify({ n, before, after })}\n`);
