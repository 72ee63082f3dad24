'use strict';
// JS values -> protobuf wire bytes, for update(): a plan per schema, built
// once from the addon's description of the session type (schema()), then
// each update's plain object is encoded in JS (where the JIT makes key
// enumeration and property reads cheap; through Node-API each costs a call)
// and handed to the engine's UpdateSerialized as one Uint8Array.
//
// The values are read as index.d.ts documents: int64 kinds as bigint or a
// safe-integer number, int32 kinds and floats as numbers, enums by name or
// number, bytes as Uint8Array, messages and maps as plain objects (a map
// keyed by its key as a string), repeated fields as arrays; null/undefined
// leaves a field out (clears it, for a top-level key). Errors are Error
// objects with code INVALID_ARGUMENT naming the field and the expected type.

// google::protobuf::FieldDescriptor::Type.
const DOUBLE = 1; const FLOAT = 2; const INT64 = 3; const UINT64 = 4; const INT32 = 5;
const FIXED64 = 6; const FIXED32 = 7; const BOOL = 8; const STRING = 9; const GROUP = 10;
const MESSAGE = 11; const BYTES = 12; const UINT32 = 13; const ENUM = 14; const SFIXED32 = 15;
const SFIXED64 = 16; const SINT32 = 17; const SINT64 = 18;

const VARINT = 0; const I64 = 1; const LEN = 2; const I32 = 5;
const LEN_ROOM = 5; // bytes kept for a length written after its body

const INT64_MIN = -(2n ** 63n); const INT64_MAX = 2n ** 63n - 1n; const UINT64_MAX = 2n ** 64n - 1n;
const INT32_MIN = -(2 ** 31); const INT32_MAX = 2 ** 31 - 1; const UINT32_MAX = 2 ** 32 - 1;
const INT32_MIN_N = BigInt(INT32_MIN); const INT32_MAX_N = BigInt(INT32_MAX); const UINT32_MAX_N = BigInt(UINT32_MAX);

function invalid(message) {
  const e = new Error(message);
  e.code = 'INVALID_ARGUMENT';
  return e;
}

function typeName(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function mismatch(f, expected, v) {
  return invalid(`field ${f.fullName}: expected ${expected}, got ${typeName(v)}`);
}

function isPlainObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isUint8Array(v) {
  return v instanceof Uint8Array || Object.prototype.toString.call(v) === '[object Uint8Array]';
}

const wireType = (type) => {
  switch (type) {
    case DOUBLE: case FIXED64: case SFIXED64: return I64;
    case FLOAT: case FIXED32: case SFIXED32: return I32;
    case STRING: case BYTES: case MESSAGE: return LEN;
    default: return VARINT;
  }
};

// One field (or a map entry's key or value) as the encoder uses it.
function planField(d, messages) {
  const f = {
    name: d.name,
    fullName: d.fullName,
    type: d.type,
    index: d.index,
    repeated: d.repeated,
    // The tag as a number: field number * 8 + wire type (< 2^32).
    tag: d.number * 8 + wireType(d.type),
    message: null,
    enumName: d.enumName,
    enumByName: null,
    enumNumbers: null,
    closedEnum: d.closedEnum === true,
    key: null,
    value: null,
  };
  if (d.message >= 0) f.message = d.message; // resolved to a plan below
  if (d.enumValues !== undefined) {
    f.enumByName = new Map(Object.entries(d.enumValues));
    f.enumNumbers = new Set(Object.values(d.enumValues));
  }
  if (d.key !== undefined) {
    f.key = planField(d.key, messages);
    f.value = planField(d.value, messages);
  }
  return f;
}

class Encoder {
  // `schema`: the addon's schema() (convert.h, DescribeSchema).
  constructor(schema) {
    this.messages = schema.map((m) => ({ fullName: m.fullName, byName: new Map() }));
    const resolve = (f) => {
      if (f.message !== null) f.message = this.messages[f.message];
      if (f.value !== null) resolve(f.value);
    };
    schema.forEach((m, i) => {
      for (const d of m.fields) {
        const f = planField(d, this.messages);
        resolve(f);
        this.messages[i].byName.set(f.name, f);
      }
    });
    this.root = this.messages[0];
    this.buf = new Uint8Array(1024);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
    // The last encode(): the top-level fields its keys named, as a mask of
    // field indexes 0..63 (lo: 0..31) and an array of higher ones.
    this.maskLo = 0;
    this.maskHi = 0;
    this.high = undefined;
    // Scratch for 64-bit integers: their low and high 32 bits.
    this.lo = 0;
    this.hi = 0;
    this.scratch = new DataView(new ArrayBuffer(8));
    this.utf8 = new TextEncoder();
  }

  // Encodes `values` (a plain object of the session type) into this.buf
  // [0, this.pos); returns this.pos. Throws INVALID_ARGUMENT.
  encode(values) {
    if (this.buf.length > (1 << 20)) this.resize(1024); // after a huge update
    this.pos = 0;
    this.maskLo = 0;
    this.maskHi = 0;
    this.high = undefined;
    const root = this.root;
    const keys = Object.keys(values);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      const f = root.byName.get(k);
      if (f === undefined) throw invalid(`${root.fullName} has no field "${k}"`);
      const ix = f.index;
      if (ix < 32) this.maskLo = (this.maskLo | (1 << ix)) >>> 0;
      else if (ix < 64) this.maskHi = (this.maskHi | (1 << (ix - 32))) >>> 0;
      else (this.high ??= []).push(ix);
      this.field(f, values[k]);
    }
    return this.pos;
  }

  resize(n) {
    const next = new Uint8Array(n);
    next.set(this.buf.subarray(0, Math.min(this.pos, n)));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  reserve(n) {
    if (this.pos + n > this.buf.length) this.resize(Math.max(this.buf.length * 2, this.pos + n));
  }

  varint32(v) { // 0 <= v < 2^32
    this.reserve(5);
    const b = this.buf;
    let p = this.pos;
    while (v > 127) {
      b[p++] = (v & 127) | 128;
      v = v >>> 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  varint64(lo, hi) { // two's complement halves, unsigned
    if (hi === 0) return this.varint32(lo);
    this.reserve(10);
    const b = this.buf;
    let p = this.pos;
    while (hi !== 0 || lo > 127) {
      b[p++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi = hi >>> 7;
    }
    b[p++] = lo;
    this.pos = p;
  }

  beginLen() {
    this.reserve(LEN_ROOM);
    this.pos += LEN_ROOM;
    return this.pos;
  }

  endLen(body) {
    const len = this.pos - body;
    const start = body - LEN_ROOM;
    let n = 1;
    for (let v = len; v > 127; v = v >>> 7) n++;
    if (n < LEN_ROOM) this.buf.copyWithin(start + n, body, this.pos);
    this.pos = start;
    this.varint32(len);
    this.pos = start + n + len;
  }

  // A JS integer into this.lo/this.hi (two's complement); false if it is
  // not an integer (a safe-integer number or a bigint) in int32 range
  // (small) or int64 range.
  signed(v, small) {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) return false;
      if (small && (v < INT32_MIN || v > INT32_MAX)) return false;
      this.lo = v >>> 0;
      this.hi = Math.floor(v / 4294967296) >>> 0;
      return true;
    }
    if (typeof v !== 'bigint') return false;
    if (small ? (v < INT32_MIN_N || v > INT32_MAX_N) : (v < INT64_MIN || v > INT64_MAX)) return false;
    this.scratch.setBigInt64(0, v, true);
    this.lo = this.scratch.getUint32(0, true);
    this.hi = this.scratch.getUint32(4, true);
    return true;
  }

  unsigned(v, small) {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0) return false;
      if (small && v > UINT32_MAX) return false;
      this.lo = v >>> 0;
      this.hi = Math.floor(v / 4294967296) >>> 0;
      return true;
    }
    if (typeof v !== 'bigint') return false;
    if (v < 0n || v > (small ? UINT32_MAX_N : UINT64_MAX)) return false;
    this.scratch.setBigUint64(0, v, true);
    this.lo = this.scratch.getUint32(0, true);
    this.hi = this.scratch.getUint32(4, true);
    return true;
  }

  // this.lo/this.hi as field f's integer type asks (after f's tag).
  integer(f) {
    switch (f.type) {
      case SINT32: {
        const n = this.lo | 0;
        return this.varint32(((n << 1) ^ (n >> 31)) >>> 0);
      }
      case SINT64: {
        const sign = this.hi >> 31;
        const hi = (((this.hi << 1) | (this.lo >>> 31)) ^ sign) >>> 0;
        const lo = ((this.lo << 1) ^ sign) >>> 0;
        return this.varint64(lo, hi);
      }
      case FIXED32: case SFIXED32:
        this.reserve(4);
        this.view.setUint32(this.pos, this.lo, true);
        this.pos += 4;
        return undefined;
      case FIXED64: case SFIXED64:
        this.reserve(8);
        this.view.setUint32(this.pos, this.lo, true);
        this.view.setUint32(this.pos + 4, this.hi, true);
        this.pos += 8;
        return undefined;
      default: // int32 (negative: ten bytes, as protobuf), int64, uint32, uint64, bool, enum
        return this.varint64(this.lo, this.hi);
    }
  }

  string(s) {
    // ASCII (the common case) byte by byte; anything else by TextEncoder
    // (lone surrogates become U+FFFD, as V8's own UTF-8 conversion does).
    const n = s.length;
    const body = this.beginLen();
    this.reserve(n * 3);
    const b = this.buf;
    let p = this.pos;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 128) break;
      b[p++] = c;
    }
    if (i < n) p += this.utf8.encodeInto(s.slice(i), b.subarray(p)).written;
    this.pos = p;
    this.endLen(body);
  }

  // One value of field f (an element, for a repeated field), with its tag.
  value(f, v) {
    switch (f.type) {
      case INT32: case SINT32: case SFIXED32:
        if (!this.signed(v, true)) throw mismatch(f, 'an integer in int32 range', v);
        break;
      case INT64: case SINT64: case SFIXED64:
        if (!this.signed(v, false)) throw mismatch(f, 'a bigint (or safe-integer number) in int64 range', v);
        break;
      case UINT32: case FIXED32:
        if (!this.unsigned(v, true)) throw mismatch(f, 'an integer in uint32 range', v);
        break;
      case UINT64: case FIXED64:
        if (!this.unsigned(v, false)) throw mismatch(f, 'a bigint (or safe-integer number) in uint64 range', v);
        break;
      case BOOL:
        if (typeof v !== 'boolean') throw mismatch(f, 'a boolean', v);
        this.lo = v ? 1 : 0;
        this.hi = 0;
        break;
      case ENUM: {
        let number;
        if (typeof v === 'string') {
          number = f.enumByName.get(v);
          if (number === undefined) throw invalid(`field ${f.fullName}: ${v} is not a value of ${f.enumName}`);
        } else {
          if (!this.signed(v, true)) throw mismatch(f, 'an enum value name (or number)', v);
          number = this.lo | 0;
          if (f.closedEnum && !f.enumNumbers.has(number)) {
            throw invalid(`field ${f.fullName}: ${number} is not a value of ${f.enumName}`);
          }
        }
        this.lo = number >>> 0;
        this.hi = number < 0 ? 0xffffffff : 0;
        break;
      }
      case DOUBLE:
      case FLOAT:
        if (typeof v !== 'number') throw mismatch(f, 'a number', v);
        this.varint32(f.tag);
        if (f.type === DOUBLE) {
          this.reserve(8);
          this.view.setFloat64(this.pos, v, true);
          this.pos += 8;
        } else {
          this.reserve(4);
          this.view.setFloat32(this.pos, v, true);
          this.pos += 4;
        }
        return;
      case STRING:
        if (typeof v !== 'string') throw mismatch(f, 'a string', v);
        this.varint32(f.tag);
        this.string(v);
        return;
      case BYTES: {
        if (!isUint8Array(v)) throw mismatch(f, 'a Uint8Array', v);
        this.varint32(f.tag);
        this.varint32(v.length);
        this.reserve(v.length);
        this.buf.set(v, this.pos);
        this.pos += v.length;
        return;
      }
      case MESSAGE: {
        if (!isPlainObject(v)) throw mismatch(f, 'an object', v);
        this.varint32(f.tag);
        const body = this.beginLen();
        this.message(f.message, v);
        this.endLen(body);
        return;
      }
      default:
        throw invalid(`field ${f.fullName}: groups are not supported`);
    }
    this.varint32(f.tag);
    this.integer(f);
  }

  // A message's fields from the own enumerable keys of `obj`.
  message(plan, obj) {
    const keys = Object.keys(obj);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      const f = plan.byName.get(k);
      if (f === undefined) throw invalid(`${plan.fullName} has no field "${k}"`);
      this.field(f, obj[k]);
    }
  }

  // A whole field: null/undefined leaves it out; a map is an object of
  // entries, a repeated field an array.
  field(f, v) {
    if (v === undefined || v === null) return;
    if (f.key !== null) {
      if (!isPlainObject(v)) throw mismatch(f, 'an object (a map)', v);
      const keys = Object.keys(v);
      for (let i = 0; i < keys.length; i++) {
        this.varint32(f.tag);
        const body = this.beginLen();
        this.mapKey(f.key, keys[i]);
        this.value(f.value, v[keys[i]]);
        this.endLen(body);
      }
      return;
    }
    if (f.repeated) {
      if (!Array.isArray(v)) throw mismatch(f, 'an array', v);
      for (let i = 0; i < v.length; i++) this.value(f, v[i]);
      return;
    }
    this.value(f, v);
  }

  // A map key given as a JS property name, converted to the key's type.
  mapKey(f, key) {
    if (f.type === STRING) {
      this.varint32(f.tag);
      this.string(key);
      return;
    }
    let ok;
    if (f.type === BOOL) {
      ok = key === 'true' || key === 'false';
      this.lo = key === 'true' ? 1 : 0;
      this.hi = 0;
    } else {
      let n;
      try {
        n = /^\s*[+-]?\d+\s*$/.test(key) ? BigInt(key.trim()) : undefined;
      } catch {
        n = undefined;
      }
      switch (f.type) {
        case INT32: case SINT32: case SFIXED32: ok = n !== undefined && this.signed(n, true); break;
        case INT64: case SINT64: case SFIXED64: ok = n !== undefined && this.signed(n, false); break;
        case UINT32: case FIXED32: ok = n !== undefined && this.unsigned(n, true); break;
        case UINT64: case FIXED64: ok = n !== undefined && this.unsigned(n, false); break;
        default: ok = false;
      }
    }
    if (!ok) throw invalid(`map key "${key}" is not a valid ${f.fullName}`);
    this.varint32(f.tag);
    this.integer(f);
  }
}

module.exports = { Encoder };
