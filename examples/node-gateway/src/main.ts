// The gateway's session state on walstate: identity written durably when a
// session is created (awaited), every turn's calibration, cost and warming
// written BATCHED (not awaited: no I/O on the event loop), and the session
// found again by its client header after a restart.
//
//   npm install && npm start        (run it twice: the second run finds
//                                    the first run's sessions)
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from 'walstate';
import type { GatewaySession } from './session.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');
const dataDir = process.env.GATEWAY_STATE_DIR ?? path.join(here, '..', 'state');

async function openStore(): Promise<Store<GatewaySession>> {
  return Store.open<GatewaySession>(dataDir, {
    proto: path.join(repo, 'proto', 'example', 'gateway.proto'),
    includeDirs: [repo],
    message: 'walstate.example.GatewaySession',
    flushIntervalMs: 30_000, // the seed's dirty-session loop
  });
}

// A new conversation: its identity must survive a crash before we answer.
async function createSession(store: Store<GatewaySession>, firstMessage: string, header: string): Promise<string> {
  const id = randomUUID();
  await store.update(id, {
    fingerprint: createHash('sha256').update(firstMessage).digest('hex'),
    header_session_id: header,
    header_name: 'x-session-id',
  });
  return id;
}

// One turn: three field groups, each replaced whole, none touching identity.
function recordTurn(store: Store<GatewaySession>, id: string, turn: number, inputTokens: number): void {
  const now = BigInt(Date.now());
  const prev = store.get(id)?.cost ?? {};
  store.update(id, {
    calibration: { last_layer: 1 + (turn % 4), last_known_input: BigInt(inputTokens), last_turn_at: now, bust_rate_ema: -1 },
    cost: {
      conversation_cost: (prev.conversation_cost ?? 0) + inputTokens * 3e-6,
      conversation_turns: (prev.conversation_turns ?? 0n) + 1n,
      cache_read_tokens: (prev.cache_read_tokens ?? 0n) + BigInt(inputTokens),
    },
    warmup: { last_warmup_at_ms: now, warmup_count: turn },
  }); // BATCHED only: returns at once, nothing to await
}

let store = await openStore();
const report = store.recoveryReport();
console.log(`opened ${dataDir}: ${report.sessions} sessions recovered in ${report.durationMs.toFixed(1)} ms`);

const header = `client-${store.keys().length}`;
const id = await createSession(store, `hello from ${header}`, header);
for (let turn = 1; turn <= 5; turn++) recordTurn(store, id, turn, 1000 * turn);
console.log(`session ${id} (header ${header}): 5 turns, cost ${store.get(id)?.cost?.conversation_cost?.toFixed(4)} USD`);

// A restart: close (flushes the last tick) and open again.
await store.close();
store = await openStore();
const [found] = store.lookup('header_session_id', header);
const state = found === undefined ? undefined : store.get(found);
console.log(`after the restart, header ${header} -> session ${found}:`);
console.log(`  turns ${state?.cost?.conversation_turns}, last layer ${state?.calibration?.last_layer}, fingerprint ${state?.fingerprint?.slice(0, 12)}...`);
console.log(`  ${store.keys().length} sessions in the store; stats: ${store.stats().ticks} ticks, ${store.stats().fsyncs} fsyncs`);
if (found !== id) {
  console.error('the header index did not find the session');
  process.exitCode = 1;
}
await store.close();
