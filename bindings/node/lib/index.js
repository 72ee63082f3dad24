'use strict';
// walstate for Node.js and Bun: a thin layer over the Node-API addon
// (src/). Types and the contract of every method: index.d.ts.

const path = require('node:path');

function loadAddon() {
  const built = path.join(__dirname, '..', 'build', 'Release', 'walstate.node');
  try {
    return require(built);
  } catch (err) {
    const e = new Error(
      `walstate: the native addon is not built or does not load (${built}): ${err.message}. ` +
        'Build it with `npm run build` in bindings/node (scripts/setup.sh installs the toolchain: ' +
        'nodejs, g++, protobuf-compiler, libprotoc-dev, libabsl-dev, libxxhash-dev).');
    e.code = 'FAILED_PRECONDITION';
    e.cause = err;
    throw e;
  }
}

const native = loadAddon();
const { Encoder } = require('./encode.js');

function invalid(message) {
  const e = new Error(message);
  e.code = 'INVALID_ARGUMENT';
  return e;
}

// Stores open in this module instance, closed on process exit (also after
// process.exit()), so the last BATCHED changes are flushed. Held weakly.
const openStores = new Set();
let exitHookInstalled = false;
function closeAllAtExit() {
  for (const ref of openStores) {
    const store = ref.deref();
    if (store === undefined) continue;
    try {
      store.closeSync();
    } catch (err) {
      process.stderr.write(`walstate: closing ${store.dir} at exit failed: ${err.message}\n`);
    }
  }
  openStores.clear();
}

class Store {
  /** @internal */
  constructor(handle, dir) {
    if (handle === undefined) throw invalid('use Store.open(dir, options)');
    this._native = handle;
    this._encoder = new Encoder(handle.schema());
    this._closing = undefined;
    this._ref = new WeakRef(this);
    this.dir = dir;
    openStores.add(this._ref);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', closeAllAtExit);
    }
  }

  static async open(dir, options) {
    if (typeof dir !== 'string' || dir === '') throw invalid('Store.open: dir must be a non-empty string');
    if (options === null || typeof options !== 'object') {
      throw invalid('Store.open: options { proto | descriptorSet, message } are required');
    }
    const opts = { ...options };
    if (typeof opts.message !== 'string' || opts.message === '') {
      throw invalid('Store.open: options.message must name the session message type, e.g. "walstate.example.GatewaySession"');
    }
    if (opts.descriptorSet !== undefined) {
      if (!(opts.descriptorSet instanceof Uint8Array)) throw invalid('Store.open: options.descriptorSet must be a Uint8Array');
    } else if (typeof opts.proto !== 'string') {
      throw invalid('Store.open: give options.proto (a .proto file) or options.descriptorSet');
    } else {
      opts.proto = path.resolve(opts.proto);
    }
    if (opts.includeDirs !== undefined) {
      if (!Array.isArray(opts.includeDirs) || !opts.includeDirs.every((d) => typeof d === 'string')) {
        throw invalid('Store.open: options.includeDirs must be an array of directory names');
      }
      opts.includeDirs = opts.includeDirs.map((d) => path.resolve(d));
    }
    for (const k of ['flushIntervalMs', 'sessionTtlMs', 'compactionIntervalMs', 'groupCommitMaxWaitMs',
      'compactionMinLogBytes', 'maxSegmentBytes', 'recoveryThreads', 'writerThreads']) {
      if (opts[k] !== undefined && !(typeof opts[k] === 'number' && opts[k] >= 0)) {
        throw invalid(`Store.open: options.${k} must be a non-negative number`);
      }
    }
    if (opts.flushIntervalMs !== undefined && opts.flushIntervalMs <= 0) {
      throw invalid('Store.open: options.flushIntervalMs must be positive');
    }
    const abs = path.resolve(dir);
    const handle = await native.open(abs, opts);
    return new Store(handle, abs);
  }

  // The values are encoded here (encode.js) and applied by the addon from
  // their wire bytes: a BATCHED turn update (3 groups) costs 3.4 us of CPU
  // per call, against 10.8 us converting them through Node-API in C++ and
  // 12.7 us by reflection (bench/batched.mjs, medians of 5 rounds, load 8).
  update(sessionId, values, options) {
    if (typeof sessionId !== 'string') throw invalid('sessionId must be a string');
    if (values === null || typeof values !== 'object' || Array.isArray(values)) {
      throw invalid('update: the values must be a plain object');
    }
    const durability = options === undefined ? undefined : options.durability;
    const e = this._encoder;
    const length = e.encode(values);
    return this._native.updateBytes(sessionId, e.buf, length, e.maskLo, e.maskHi, durability, e.high);
  }

  delete(sessionId) { return this._native.delete(sessionId); }
  get(sessionId) { return this._native.get(sessionId); }
  has(sessionId) { return this._native.has(sessionId); }
  keys() { return this._native.keys(); }
  lookup(field, value) { return this._native.lookup(field, value); }

  *entries() {
    for (const id of this._native.keys()) {
      const state = this._native.get(id);
      if (state !== undefined) yield [id, state];
    }
  }
  [Symbol.iterator]() { return this.entries(); }
  async *[Symbol.asyncIterator]() { yield* this.entries(); }
  forEach(fn) {
    for (const [id, state] of this.entries()) fn(state, id, this);
  }

  flush() { return this._native.flush(); }
  compact() { return this._native.compact(); }
  expireIdle(idleMs) {
    if (idleMs === undefined) return this._native.expireIdle();
    if (typeof idleMs !== 'number' || !(idleMs >= 0)) {
      throw invalid('expireIdle(ms): ms must be a number >= 0 (the idle age in milliseconds), ' +
        "or left out for the store's sessionTtlMs");
    }
    return this._native.expireIdle(idleMs);
  }
  stats() { return this._native.stats(); }
  approximateMemoryUsage() { return this._native.approximateMemoryUsage(); }
  health() { return this._native.health(); }
  recoveryReport() { return this._native.recoveryReport(); }

  close() {
    if (this._closing === undefined) {
      openStores.delete(this._ref);
      const release = () => this._native.release();
      this._closing = this._native.close().then(release, (err) => {
        release();
        throw err;
      });
    }
    return this._closing;
  }

  closeSync() {
    openStores.delete(this._ref);
    if (this._closing === undefined) this._closing = Promise.resolve();
    this._native.closeSync();
  }
}

module.exports = { Store };
module.exports.default = module.exports;
