// The process the crash test SIGKILLs (test/crash.test.mjs). Prints to fd 1,
// synchronously, one line per acknowledged event:
//   ack W N        IMMEDIATE update of session imm-W to seq N resolved
//   flush-start K  every session bat-* now holds step K (BATCHED), flushing
//   flushed K      that flush resolved
// Ticks are made only by those flushes (no background thread), so what a
// restart finds of the BATCHED sessions must be one step for all of them.
import fs from 'node:fs';
import { Store, gatewayOptions } from './helpers.mjs';

const [dir, writersArg, batchedArg] = process.argv.slice(2);
const writers = Number(writersArg);
const batched = Number(batchedArg);
const out = (line) => fs.writeSync(1, `${line}\n`);

const store = await Store.open(dir, { ...gatewayOptions, backgroundThread: false });

// Continue from what the previous (killed) run left.
const seqOf = (id) => Number(store.get(id)?.header_name ?? '0');
const stepOf = () => Number(store.get('bat-0')?.calibration?.last_turn_at ?? 0n);

async function writer(w) {
  for (let n = seqOf(`imm-${w}`) + 1; ; n++) {
    await store.update(`imm-${w}`, { header_name: String(n) });
    out(`ack ${w} ${n}`);
  }
}

async function ticker() {
  for (let k = stepOf() + 1; ; k++) {
    for (let i = 0; i < batched; i++) {
      store.update(`bat-${i}`, { calibration: { last_turn_at: BigInt(k), last_layer: k % 5 } });
    }
    out(`flush-start ${k}`);
    await store.flush();
    out(`flushed ${k}`);
  }
}

out('ready');
for (let w = 0; w < writers; w++) writer(w);
ticker();
