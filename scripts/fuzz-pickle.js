// Pickle-level mutations for the torch.save reader (native/checkpoints/pickle_reader.cc), used by
// scripts/fuzz-checkpoints.js: globals renamed to what must be refused, storage sizes and tensor
// sizes/strides/offsets set to boundary and 64-bit values, nesting and memo bombs, huge lengths,
// truncation at an opcode. Each returns [bytes, description]; `r` is the fuzzer's seeded rng.
'use strict';

const EVIL_GLOBALS = ['posix\nsystem', 'builtins\neval', '__builtin__\nexec', 'torch\nload', 'torch._utils\n_rebuild_qtensor',
  'collections\ndefaultdict', 'torch\nFloatStorag', 'torch._utils\n_rebuild_tensor_v3', 'numpy.core.multiarray\nscalar', '__main__\nPayload'];
const BIG_INTS = [2n ** 62n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 40n, 2n ** 31n, -1n, 0n, 1n, 3n];

function int64le(v) {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt.asIntN(64, v));
  return b;
}

// GLOBAL 'module\nname\n' rewritten to one that is not on the allowlist (or almost is).
function renameGlobal(r, data) {
  const text = data.toString('latin1');
  const found = [...text.matchAll(/c([A-Za-z_.]+)\n([A-Za-z_0-9]+)\n/g)];
  if (found.length === 0) return null;
  const m = r.pick(found);
  const v = r.pick(EVIL_GLOBALS);
  return [Buffer.from(text.slice(0, m.index) + 'c' + v + '\n' + text.slice(m.index + m[0].length), 'latin1'), `global ${m[1]}.${m[2]} -> ${v.replace('\n', '.')}`];
}

// The int just before a persistent id's TUPLE (... numel t q<n> Q): a storage's element count.
// Set to values that do not match its record, or that overflow when multiplied by the size.
function storageNumel(r, data) {
  const at = [];
  for (let i = 8; i < data.length; i++) {
    if (data[i] !== 0x51 || data[i - 2] !== 0x71 || data[i - 3] !== 0x74) continue;
    if (data[i - 5] === 0x4b) at.push([i - 5, 2]);
    else if (data[i - 6] === 0x4d) at.push([i - 6, 3]);
    else if (data[i - 8] === 0x4a) at.push([i - 8, 5]);
  }
  if (at.length === 0) return null;
  const [i, width] = r.pick(at);
  const v = r.pick(BIG_INTS.concat([2n, 5n, 100n, 2n ** 61n]));
  const enc = Buffer.concat([Buffer.from([0x8a, 8]), int64le(v)]);
  return [Buffer.concat([data.subarray(0, i), enc, data.subarray(i + width)]), `storage numel at ${i} -> ${v}`];
}

// One small int (a size, stride, offset, memo index) replaced by a 64-bit LONG1.
function longInt(r, data) {
  const at = [];
  for (let i = 0; i < data.length; i++) if (data[i] === 0x4b || data[i] === 0x4d) at.push(i);
  if (at.length === 0) return null;
  const i = r.pick(at);
  const v = r.pick(BIG_INTS);
  const enc = Buffer.concat([Buffer.from([0x8a, 8]), int64le(v)]);
  return [Buffer.concat([data.subarray(0, i), enc, data.subarray(i + (data[i] === 0x4b ? 2 : 3))]), `long int at ${i} -> ${v}`];
}

// Something inserted just before the final STOP, so the rest of the pickle is intact.
function beforeStop(data, payload) {
  const stop = data.lastIndexOf(0x2e);
  const at = stop < 0 ? data.length : stop;
  return Buffer.concat([data.subarray(0, at), payload, data.subarray(at)]);
}

function bomb(r, data) {
  const n = r.pick([1000, 100000, 1000000]);
  const kind = r.int(7);
  if (kind === 0) {
    // a list nested n deep: n EMPTY_LISTs, n-1 APPENDs, POP
    return [beforeStop(data, Buffer.concat([Buffer.alloc(n, 0x5d), Buffer.alloc(n - 1, 0x61), Buffer.from([0x30])])), `nesting ${n} deep`];
  }
  if (kind === 1) return [beforeStop(data, Buffer.alloc(n, 0x28)), `${n} MARKs`];
  if (kind === 2) {
    // a list that holds itself: EMPTY_LIST, BINPUT 200, BINGET 200, APPEND, POP
    return [beforeStop(data, Buffer.from([0x5d, 0x71, 200, 0x68, 200, 0x61, 0x30])), 'a list that holds itself'];
  }
  if (kind === 3) {
    const put = Buffer.from([0x4e, 0x72, 0, 0, 0, 0, 0x30]);
    put.writeUInt32LE(r.pick([0xffffffff, 2 ** 29, 2 ** 31]), 2);
    return [beforeStop(data, put), `LONG_BINPUT ${put.readUInt32LE(2)}`];
  }
  if (kind === 4) {
    const len = r.pick([0xffffffff, 0x7fffffff, data.length]);
    const op = Buffer.from([r.pick([0x58, 0x42, 0x54]), 0, 0, 0, 0]);
    op.writeUInt32LE(len, 1);
    return [beforeStop(data, op), `a string of ${len} bytes`];
  }
  if (kind === 5) {
    const get = Buffer.from([0x6a, 0, 0, 0, 0]);
    get.writeUInt32LE(r.pick([9999, 0xffffffff]), 1);
    return [beforeStop(data, get), 'LONG_BINGET of an unset memo'];
  }
  // n DUPs of the top of the stack
  return [beforeStop(data, Buffer.concat([Buffer.from([0x4e]), Buffer.alloc(n, 0x32)])), `${n} DUPs`];
}

function truncateAtOpcode(r, data) {
  const keep = r.int(data.length);
  return [data.subarray(0, keep), `pickle cut at ${keep}`];
}

// One pickle-level mutation of a torch.save pickle (data.pkl, or a legacy file whole).
function pickleMutation(r, data, pickleInts) {
  const tries = [renameGlobal, storageNumel, longInt, bomb, truncateAtOpcode, storageNumel, longInt];
  for (let k = 0; k < 4; k++) {
    const out = r.pick(tries)(r, data);
    if (out) return out;
  }
  return pickleInts(r, data);
}

module.exports = { pickleMutation };
