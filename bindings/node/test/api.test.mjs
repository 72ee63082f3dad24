// The JS API over a real store: conversions both ways, tiers, indexes,
// errors with codes, restart, lifecycle. Run: node --test test/ (or bun test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Store, tempDir, typesOptions, gatewayOptions } from './helpers.mjs';

async function openTypes(dir, extra = {}) {
  return Store.open(dir, { ...typesOptions, backgroundThread: false, ...extra });
}

test('every field kind round-trips through update and get', async () => {
  const dir = tempDir('types');
  const s = await openTypes(dir);
  const values = {
    key: 'k1',
    counter: 9007199254740993n, // past 2^53: kept exact as bigint
    color: 'GREEN',
    blob: new Uint8Array([0, 1, 255]),
    unsigned_big: 18446744073709551615n,
    small: -7,
    ratio: 0.25,
    approx: 1.5,
    flag: true,
    inner: { label: 'x', big: -5n, small: [1, 2, 3] },
    tags: ['a', 'b'],
    items: [{ label: 'i0' }, { label: 'i1', big: 1n }],
    totals: { usd: 12n, eur: 0n },
    by_id: { 7: { label: 'seven' } },
    maybe: 0,
  };
  await s.update('s1', values);
  const got = s.get('s1');
  assert.deepEqual(got, { ...values, totals: { usd: 12n, eur: 0n } });
  assert.ok(got.blob instanceof Uint8Array);
  // A safe-integer number is accepted for int64 and comes back as bigint.
  await s.update('s2', { counter: 42 });
  assert.equal(s.get('s2').counter, 42n);
  // An enum by number comes back by name.
  await s.update('s2', { color: 1 });
  assert.equal(s.get('s2').color, 'RED');
  await s.close();
  // And the same after a restart.
  const again = await openTypes(dir);
  assert.deepEqual(again.get('s1'), got);
  await again.close();
});

test('every wire encoding round-trips: zigzag, fixed, long and non-ASCII strings, map keys', async () => {
  const s = await openTypes(tempDir('wire'));
  const long = 'x'.repeat(300);
  const values = {
    zig: -2147483648,
    zig64: -9223372036854775808n,
    fix: 4294967295,
    fix64: 18446744073709551615n,
    sfix: -1,
    sfix64: -9007199254740993n,
    small: -1, // int32 < 0: ten bytes on the wire
    counter: -(2n ** 63n),
    tags: ['héllo ✓ 😀', long, ''],
    inner: { label: long, big: 2n ** 62n, small: [-1, 0, 2147483647] },
    by_big: { '-5': 'minus five', '9007199254740993': 'past 2^53' },
    by_flag: { true: { label: 'yes' }, false: { label: 'no' } },
    colors: ['RED', 'GREEN', 1],
    blob: Buffer.from('buffer bytes'),
  };
  s.update('w', values, { durability: 'BATCHED' });
  const got = s.get('w');
  assert.deepEqual(got, {
    ...values,
    colors: ['RED', 'GREEN', 'RED'],
    blob: new Uint8Array(Buffer.from('buffer bytes')),
  });
  assert.throws(() => s.update('w', { by_big: { x: 'y' } }), (e) => e.code === 'INVALID_ARGUMENT' && /map key "x"/.test(e.message));
  assert.throws(() => s.update('w', { fix: -1 }), (e) => e.code === 'INVALID_ARGUMENT');
  assert.throws(() => s.update('w', { zig: 2 ** 31 }), (e) => e.code === 'INVALID_ARGUMENT');
  assert.throws(() => s.update('w', { colors: [null] }), (e) => e.code === 'INVALID_ARGUMENT');
  assert.throws(() => s.update('w', { inner: { nope: 1 } }), (e) => e.code === 'INVALID_ARGUMENT' && /Inner has no field "nope"/.test(e.message));
  // A rejected update changes nothing.
  assert.deepEqual(s.get('w'), got);
  await s.close();
});

test('IMMEDIATE updates return a Promise, BATCHED-only ones apply at once', async () => {
  const s = await openTypes(tempDir('tiers'));
  const p = s.update('a', { key: 'ka' });
  assert.ok(p instanceof Promise);
  assert.equal(await p, undefined);
  const r = s.update('a', { small: 3, inner: { label: 'l' } });
  assert.equal(r, undefined);
  assert.equal(s.get('a').small, 3); // visible at once, no await
  const st = s.stats();
  assert.equal(st.immediateUpdates, 1);
  assert.equal(st.batchedUpdates, 1);
  assert.equal(st.dirtySessions, 1);
  // The tier can be overridden per update.
  assert.ok(s.update('a', { small: 4 }, { durability: 'IMMEDIATE' }) instanceof Promise);
  assert.equal(s.update('a', { key: 'kb' }, { durability: 'BATCHED' }), undefined);
  await s.close();
});

test('an update sets only the keys it lists; null clears one', async () => {
  const s = await openTypes(tempDir('partial'));
  await s.update('a', { key: 'k', small: 1, tags: ['t'] });
  s.update('a', { small: 2 });
  assert.deepEqual(s.get('a'), { key: 'k', small: 2, tags: ['t'] });
  s.update('a', { tags: null });
  assert.deepEqual(s.get('a'), { key: 'k', small: 2 });
  await s.close();
});

test('errors carry the absl code and say what is wrong', async () => {
  const s = await openTypes(tempDir('errors'));
  const code = (c) => (e) => e.code === c;
  assert.throws(() => s.update('a', { nope: 1 }), (e) => e.code === 'INVALID_ARGUMENT' && /no field "nope"/.test(e.message));
  assert.throws(() => s.update('a', { small: 'x' }), (e) => e.code === 'INVALID_ARGUMENT' && /TypesSession.small/.test(e.message));
  assert.throws(() => s.update('a', { small: 2 ** 40 }), code('INVALID_ARGUMENT'));
  assert.throws(() => s.update('a', { counter: 1.5 }), code('INVALID_ARGUMENT'));
  assert.throws(() => s.update('a', { unsigned_big: -1n }), code('INVALID_ARGUMENT'));
  assert.throws(() => s.update('a', { color: 'PURPLE' }), code('INVALID_ARGUMENT'));
  assert.throws(() => s.update('a', { blob: 'text' }), code('INVALID_ARGUMENT'));
  assert.throws(() => s.update('a', { inner: { label: 1 } }), code('INVALID_ARGUMENT'));
  assert.throws(() => s.update('a', [1]), code('INVALID_ARGUMENT'));
  assert.throws(() => s.update(1, {}), code('INVALID_ARGUMENT'));
  assert.throws(() => s.lookup('small', 1), code('INVALID_ARGUMENT')); // not indexed
  await s.update('a', { key: 'taken' });
  await assert.rejects(s.update('b', { key: 'taken' }), code('ALREADY_EXISTS'));
  await assert.rejects(s.update('', { key: 'x' }), code('INVALID_ARGUMENT'));
  await s.close();
  assert.throws(() => s.get('a'), code('FAILED_PRECONDITION'));
  assert.throws(() => s.update('a', { small: 1 }), code('FAILED_PRECONDITION'));
});

test('a directory held by an open store cannot be opened twice', async () => {
  const dir = tempDir('lock');
  const s = await openTypes(dir);
  await assert.rejects(openTypes(dir), (e) => typeof e.code === 'string' && e.code !== 'OK' && e.message.includes(dir));
  await s.close();
});

test('schema errors name the file and line; the message must exist', async () => {
  const dir = tempDir('schema');
  const bad = path.join(dir, 'bad.proto');
  fs.writeFileSync(bad, 'syntax = "proto3";\nmessage M { strin x = 1; }\n');
  await assert.rejects(Store.open(path.join(dir, 'db'), { proto: bad, message: 'M' }),
    (e) => e.code === 'INVALID_ARGUMENT' && /bad\.proto:2:/.test(e.message));
  await assert.rejects(Store.open(path.join(dir, 'db'), { ...typesOptions, message: 'walstate.test.Nope' }),
    (e) => e.code === 'NOT_FOUND' && /walstate\.test\.Nope/.test(e.message));
  await assert.rejects(Store.open(path.join(dir, 'db'), { message: 'M' }), (e) => e.code === 'INVALID_ARGUMENT');
  const missing = path.join(dir, 'imports.proto');
  fs.writeFileSync(missing, 'syntax = "proto3";\nimport "other/none.proto";\nmessage M { int32 x = 1; }\n');
  await assert.rejects(Store.open(path.join(dir, 'db'), { proto: missing, message: 'M' }),
    (e) => e.code === 'NOT_FOUND' && /other\/none\.proto/.test(e.message));
});

test('a FileDescriptorSet works as well as a .proto', async (t) => {
  const dir = tempDir('descset');
  const out = path.join(dir, 'set.pb');
  try {
    execFileSync('protoc', ['--include_imports', `--descriptor_set_out=${out}`,
      `--proto_path=${gatewayOptions.includeDirs[0]}`, `--proto_path=${path.join(gatewayOptions.includeDirs[0], 'include')}`,
      '--proto_path=/usr/include', gatewayOptions.proto]);
  } catch (e) {
    t.skip('protoc is not installed');
    return;
  }
  const s = await Store.open(path.join(dir, 'db'), {
    descriptorSet: new Uint8Array(fs.readFileSync(out)),
    message: 'walstate.example.GatewaySession',
  });
  await s.update('x', { header_session_id: 'h' });
  assert.deepEqual(s.lookup('header_session_id', 'h'), ['x']);
  await s.close();
});

test('indexes, delete, keys, iteration, flush, compact and a restart', async () => {
  const dir = tempDir('gateway');
  const s = await Store.open(dir, { ...gatewayOptions, backgroundThread: false });
  await Promise.all([
    s.update('s1', { fingerprint: 'fp', header_session_id: 'h1', header_name: 'x-session' }),
    s.update('s2', { fingerprint: 'fp', header_session_id: 'h2' }),
    s.update('s3', { fingerprint: 'other' }),
  ]);
  s.update('s1', { calibration: { last_layer: 2, last_turn_at: 1700000000000n } });
  assert.deepEqual(s.lookup('fingerprint', 'fp').sort(), ['s1', 's2']);
  assert.deepEqual(s.lookup('header_session_id', 'h2'), ['s2']);
  assert.equal(await s.delete('s3'), true);
  assert.equal(await s.delete('s3'), false);
  assert.equal(s.get('s3'), undefined);
  assert.equal(s.has('s3'), false);
  assert.deepEqual(s.keys().sort(), ['s1', 's2']);
  const seen = [];
  for await (const [id, state] of s) seen.push([id, state.fingerprint]);
  assert.deepEqual(seen.sort(), [['s1', 'fp'], ['s2', 'fp']]);
  let n = 0;
  s.forEach((state, id) => { n += id.length > 0 && state.fingerprint === 'fp' ? 1 : 0; });
  assert.equal(n, 2);
  await s.flush();
  assert.equal(s.stats().dirtySessions, 0);
  await s.compact();
  assert.equal(s.stats().snapshotsWritten, 1);
  assert.equal(await s.expireIdle(), 0); // no sessionTtlMs
  assert.deepEqual(s.health(), { ok: true, code: 'OK', message: '' });
  await s.close();
  await s.close(); // idempotent

  const r = await Store.open(dir, gatewayOptions);
  assert.deepEqual(r.lookup('header_session_id', 'h1'), ['s1']); // the index is back
  assert.equal(r.get('s1').calibration.last_layer, 2);
  assert.equal(r.get('s1').calibration.last_turn_at, 1700000000000n);
  const rep = r.recoveryReport();
  assert.equal(rep.sessions, 2);
  assert.ok(rep.snapshotFile.length > 0);
  assert.deepEqual(rep.problems, []);
  r.closeSync();
});

test('expireIdle(ms) deletes the sessions idle longer than ms, whatever the store\'s sessionTtlMs', async () => {
  const s = await openTypes(tempDir('expire')); // no sessionTtlMs: the background expiry is off
  s.update('a', { small: 1 });
  s.update('b', { small: 2 });
  assert.equal(await s.expireIdle(), 0); // no argument: the store's TTL, none
  assert.equal(await s.expireIdle(3600_000), 0); // nothing is an hour idle
  assert.deepEqual(s.keys().sort(), ['a', 'b']);
  // Let the clock move past the updates (not a wait for another thread):
  // both sessions are then idle for more than 0 ms.
  const t = Date.now();
  while (Date.now() < t + 2);
  assert.equal(await s.expireIdle(0), 2);
  assert.deepEqual(s.keys(), []);
  assert.equal(s.stats().expired, 2);
  for (const bad of [-1, Number.NaN, '10', 10n]) {
    assert.throws(() => s.expireIdle(bad), (e) => e.code === 'INVALID_ARGUMENT' && /expireIdle/.test(e.message));
  }
  await s.close();
});

test('concurrent IMMEDIATE updates share fdatasyncs', async () => {
  const s = await openTypes(tempDir('group'));
  const n = 64;
  await Promise.all(Array.from({ length: n }, (_, i) => s.update(`s${i}`, { counter: i })));
  const st = s.stats();
  assert.equal(st.immediateUpdates, n);
  assert.ok(st.fsyncs < n, `${st.fsyncs} syncs for ${n} concurrent updates`);
  await s.close();
});
