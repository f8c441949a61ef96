// Reading and writing .safetensors files: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}}, then raw little-endian tensor bytes.
// Nothing in the format can run code, which is why it is the safe way to ship weights.
import * as fs from 'fs';
import { binding, DType } from './binding';
import { Tensor } from './tensor';

const DTYPES: Record<string, { dtype: DType; size: number }> = {
  F32: { dtype: 'float32', size: 4 },
  F64: { dtype: 'float64', size: 8 },
  F16: { dtype: 'float16', size: 2 },
  BF16: { dtype: 'bfloat16', size: 2 },
  I64: { dtype: 'int64', size: 8 },
  I32: { dtype: 'int32', size: 4 },
  U8: { dtype: 'uint8', size: 1 },
  BOOL: { dtype: 'bool', size: 1 },
};

function bad(path: string, why: string): Error {
  return new Error(`safetensors: ${path} is not a valid safetensors file: ${why}`);
}

/** Loads every tensor of a .safetensors file (on the CPU). */
export function loadSafetensors(path: string): Record<string, Tensor> {
  if (typeof path !== 'string') throw new TypeError(`Expected string for path but received ${typeof path}`);
  // A regular, non-empty file (not /dev/zero, a FIFO or a /proc file, which never end), and a
  // header that fits in it, before anything is read or allocated.
  binding.checkpointFormat(path, 'safetensors');
  const buf = readChecked(path);
  const headerLen = buf.readBigUInt64LE(0);
  const dataStart = 8 + Number(headerLen);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, dataStart).toString('utf8'));
  } catch (err) {
    throw bad(path, `the header is not JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad(path, 'the header is not a JSON object');
  const out: Record<string, Tensor> = {};
  try {
    for (const [name, entry] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const info = typeof e?.dtype === 'string' ? DTYPES[e.dtype] : undefined;
      if (!info) throw bad(path, `tensor '${name}' has unsupported dtype ${JSON.stringify(e?.dtype)}`);
      const shape = e.shape;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw bad(path, `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
      }
      const offsets = e.data_offsets;
      if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw bad(path, `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
      }
      const [begin, end] = offsets as number[];
      const numel = (shape as number[]).reduce((a, b) => a * b, 1);
      if (end < begin || end - begin !== numel * info.size) {
        throw bad(path, `tensor '${name}' of shape [${shape.join(', ')}] ${e.dtype} needs ${numel * info.size} bytes but its data_offsets span ${end - begin}`);
      }
      if (dataStart + end > buf.length) throw bad(path, `tensor '${name}' extends past the end of the file (truncated?)`);
      const bytes = new Uint8Array(buf.subarray(dataStart + begin, dataStart + end));
      out[name] = binding.fromBytes(bytes, shape as number[], info.dtype);
    }
  } catch (err) {
    for (const t of Object.values(out)) t.dispose();
    throw err;
  }
  return out;
}

// Reads the file whole once its header length is known to fit in it, sized by fstat of the
// descriptor read (so that a path swapped for a device since the check cannot read without end).
function readChecked(path: string): Buffer {
  const fd = fs.openSync(path, 'r');
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error(`safetensors: ${path} is not a regular file`);
    if (st.size < 8) throw bad(path, `it has ${st.size} bytes, fewer than the 8-byte header length`);
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const headerLen = len.readBigUInt64LE(0);
    if (headerLen > BigInt(st.size - 8)) throw bad(path, `the header length ${headerLen} exceeds the file size ${st.size}`);
    const buf = Buffer.alloc(st.size);
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(fd, buf, done, buf.length - done, done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes tensors to a .safetensors file (copied to the CPU, contiguous). */
export function saveSafetensors(tensors: Record<string, Tensor>, path: string, metadata?: Record<string, string>): void {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const code = Object.keys(DTYPES).find((k) => DTYPES[k].dtype === t.dtype)!;
    const data = t.dtype === 'float16' || t.dtype === 'bfloat16' ? t.to('float32').to(t.dtype) : t;
    const bytes = rawBytes(data);
    header[name] = { dtype: code, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  fs.writeFileSync(path, Buffer.concat([len, Buffer.from(json, 'utf8'), ...chunks]));
}

function rawBytes(t: Tensor): Buffer {
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') return Buffer.from(binding.toBytes(t).buffer);
  const d = t.data();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}
