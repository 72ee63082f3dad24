// No handle or memory growth over many updates (--expose-gc in a child).
// WALSTATE_NODE_LEAK_UPDATES sets the count (CI: 2*10^5;
// bindings/node/scripts/leak_check.sh runs 10^6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'leak_child.mjs');
const n = Number(process.env.WALSTATE_NODE_LEAK_UPDATES ?? 200000);

test(`no heap, external, RSS or handle growth over ${n} updates`, { skip: process.versions.bun ? 'needs node --expose-gc' : false }, () => {
  const r = spawnSync(process.execPath, ['--expose-gc', child, String(n)], { encoding: 'utf8', timeout: 600000 });
  assert.equal(r.status, 0, r.stderr);
  const { before, after } = JSON.parse(r.stdout.trim().split('\n').pop());
  process.stdout.write(`# leak check over ${n} updates: ${JSON.stringify({ before, after })}\n`);
  assert.equal(after.handles, before.handles);
  assert.ok(after.heap - before.heap < 1 << 20, `JS heap grew ${after.heap - before.heap} bytes`);
  assert.ok(after.external - before.external < 1 << 20, `external memory grew ${after.external - before.external} bytes`);
  assert.ok(after.rss - before.rss < 16 << 20, `RSS grew ${after.rss - before.rss} bytes`);
});
