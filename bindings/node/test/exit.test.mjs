// A store left open is closed when the process exits (naturally or by
// process.exit()), so its last BATCHED changes are flushed; and an idle
// store does not keep the event loop alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store, gatewayOptions, tempDir } from './helpers.mjs';

const helpers = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers.mjs');

function runChild(dir, tail) {
  const code = `
    import { Store, gatewayOptions } from ${JSON.stringify(helpers)};
    const s = await Store.open(${JSON.stringify(dir)}, { ...gatewayOptions, flushIntervalMs: 3600000 });
    await s.update('x', { fingerprint: 'f' });
    s.update('x', { calibration: { last_layer: 3 } });
    ${tail}`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60000 });
}

for (const [name, tail] of [['the loop ends', ''], ['process.exit()', 'process.exit(0);']]) {
  test(`an unclosed store is flushed and closed when ${name}`, async () => {
    const dir = tempDir('exit');
    const r = runChild(dir, tail);
    assert.equal(r.status, 0, r.stderr); // and it did exit: no handle left open
    const s = await Store.open(dir, gatewayOptions);
    assert.equal(s.get('x').calibration.last_layer, 3);
    assert.equal(s.recoveryReport().tornBytesDropped, 0);
    await s.close();
  });
}
