#!/usr/bin/env node
// Fuzzes the checkpoint loaders: mutates valid checkpoints (the reference case's TorchScript
// files and unet.safetensors, the toy model, a Unet saved here, torch.save files of
// test/fixtures/torch-save in the zip and the old format) with bit flips, byte sets,
// truncations, splices, zip-structure corruption, corruption of single zip entries (the
// pickles, the TorchScript code, the tensor data) and pickle-level mutations (scripts/fuzz-pickle.js),
// then loads each with jit.load / Module.loadStateDict / readStateDict and runs forward or reads
// every tensor, in a child process. Each case ends as
//   ok     loaded and ran (the mutation did not matter)
//   error  a JS Error was thrown (what we want from a bad file)
//   crash  the child died: a signal, an abort, or any exit that was not ours
//   hang   no progress for --hang-ms (the child is killed)
// A child runs many cases; before each it writes the case index to a file, so a crash names
// its case. After a crash the parent starts a new child at the next case. Cases are
// deterministic from (seed, index): `--only N` replays one case in this process.
//
// Usage: node scripts/fuzz-checkpoints.js [--cases 2000] [--seed 1] [--batch 200]
//          [--hang-ms 30000] [--keep DIR] [--only N] [--kinds pt,safetensors,torchsave,legacy]
// --kinds keeps the corpus files of those kinds (default: all). The peak resident memory of the
// children is reported: a case that allocates without bound shows there (or as a crash/hang).
// Needs dist/lib (npx tsc -p tsconfig.json) and the addon (GD_ADDON_PATH picks a side build).
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { pickleMutation } = require('./fuzz-pickle');
const { readZip, writeZip } = require('./fuzz-zip');

const ROOT = path.resolve(__dirname, '..');
const LIB = path.join(ROOT, 'dist', 'lib');
const FIXTURES = path.join(ROOT, 'test', 'fixtures');

function args() {
  const out = { cases: 2000, seed: 1, batch: 200, hangMs: 30000, keep: null, only: null, child: false, from: 0, to: 0, dir: null, kinds: null };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--cases') out.cases = Number(next());
    else if (a === '--seed') out.seed = Number(next());
    else if (a === '--batch') out.batch = Number(next());
    else if (a === '--hang-ms') out.hangMs = Number(next());
    else if (a === '--keep') out.keep = path.resolve(next());
    else if (a === '--only') out.only = Number(next());
    else if (a === '--child') out.child = true;
    else if (a === '--from') out.from = Number(next());
    else if (a === '--to') out.to = Number(next());
    else if (a === '--dir') out.dir = next();
    else if (a === '--kinds') out.kinds = next().split(',');
    else throw new Error(`unknown argument ${a}`);
  }
  return out;
}

// ---- deterministic randomness -------------------------------------------------------------

function rng(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    float: next,
    int: (n) => Math.floor(next() * n),
    pick: (list) => list[Math.floor(next() * list.length)],
  };
}

// ---- mutations ------------------------------------------------------------------------------

const INTERESTING = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe, 0x40, 0x20];
const INTERESTING32 = [0, 1, 0xffffffff, 0x7fffffff, 0x80000000, 0xffff, 0x10000, 0xfffffffe];

function bitflip(r, buf) {
  const out = Buffer.from(buf);
  const n = 1 + r.int(8);
  const at = [];
  for (let i = 0; i < n; i++) {
    const p = r.int(out.length);
    out[p] ^= 1 << r.int(8);
    at.push(p);
  }
  return [out, `bitflip x${n} at ${at.join(',')}`];
}

function byteset(r, buf) {
  const out = Buffer.from(buf);
  const n = 1 + r.int(4);
  const at = [];
  for (let i = 0; i < n; i++) {
    const p = r.int(out.length);
    out[p] = r.float() < 0.7 ? r.pick(INTERESTING) : r.int(256);
    at.push(p);
  }
  return [out, `byteset x${n} at ${at.join(',')}`];
}

function truncate(r, buf) {
  const keep = r.float() < 0.3 ? buf.length - 1 - r.int(Math.min(64, buf.length - 1)) : r.int(buf.length);
  return [buf.subarray(0, keep), `truncate to ${keep}`];
}

function splice(r, buf, other) {
  const src = r.float() < 0.5 ? buf : other;
  const len = 1 + r.int(Math.min(256, src.length));
  const from = r.int(src.length - len + 1);
  const to = r.int(buf.length);
  const chunk = src.subarray(from, from + len);
  const mode = r.int(3);
  if (mode === 0) {
    const out = Buffer.from(buf);
    chunk.copy(out, to);
    return [out, `splice overwrite ${len} bytes from ${from} to ${to}`];
  }
  if (mode === 1) return [Buffer.concat([buf.subarray(0, to), chunk, buf.subarray(to)]), `splice insert ${len} bytes from ${from} at ${to}`];
  return [Buffer.concat([buf.subarray(0, to), buf.subarray(Math.min(buf.length, to + len))]), `splice delete ${len} bytes at ${to}`];
}

function mutateBytes(r, buf, other) {
  const kind = r.int(10);
  if (buf.length === 0) return [buf, 'empty'];
  if (kind < 4) return bitflip(r, buf);
  if (kind < 6) return byteset(r, buf);
  if (kind < 7) return truncate(r, buf);
  return splice(r, buf, other);
}

// Corrupts one field of one entry's central or local header in place.
function zipField(r, buf) {
  const zip = readZip(buf);
  const e = r.pick(zip.entries);
  const out = Buffer.from(buf);
  const central = [
    ['method', 10, 2], ['crc', 16, 4], ['csize', 20, 4], ['usize', 24, 4], ['nameLen', 28, 2],
    ['extraLen', 30, 2], ['commentLen', 32, 2], ['offset', 42, 4], ['flags', 8, 2],
  ];
  const local = [['method', 8, 2], ['crc', 14, 4], ['csize', 18, 4], ['usize', 22, 4], ['nameLen', 26, 2], ['extraLen', 28, 2], ['flags', 6, 2]];
  const eocd = [['entries', 10, 2], ['cdSize', 12, 4], ['cdOffset', 16, 4], ['entriesOnDisk', 8, 2]];
  const where = r.int(5);
  const [table, base, label] = where < 2 ? [central, e.centralAt, `central ${e.name}`] : where < 4 ? [local, e.localAt, `local ${e.name}`] : [eocd, zip.eocd, 'eocd'];
  const [field, off, size] = r.pick(table);
  const old = size === 2 ? out.readUInt16LE(base + off) : out.readUInt32LE(base + off);
  const choices = [0, old + 1, old - 1, old * 2, old >>> 1, r.pick(INTERESTING32), r.int(2 ** 31)];
  let value = r.pick(choices) >>> 0;
  if (size === 2) value &= 0xffff;
  if (size === 2) out.writeUInt16LE(value, base + off);
  else out.writeUInt32LE(value, base + off);
  return [out, `zip ${label} ${field} ${old} -> ${value}`];
}

// Pickle integers (BININT1 'K', BININT2 'M', BININT 'J') set to boundary values: tensor sizes,
// strides and storage offsets, memo indices, tuple lengths. A byte that only looks like an
// opcode gets changed too; that is a mutation like any other.
const PICKLE_INTS = [0, 1, -1, 2, 255, 65535, 2 ** 31 - 1, -(2 ** 31), 2 ** 24, -7, 1000000];
function pickleInts(r, data) {
  const at = [];
  for (let i = 0; i < data.length; i++) if (data[i] === 0x4b || data[i] === 0x4d || data[i] === 0x4a) at.push(i);
  if (at.length === 0) return bitflip(r, data);
  let out = data;
  const n = 1 + r.int(3);
  const did = [];
  for (let k = 0; k < n; k++) {
    const i = r.pick(at);
    if (i >= out.length) continue;
    const width = out[i] === 0x4b ? 1 : out[i] === 0x4d ? 2 : 4;
    const v = r.pick(PICKLE_INTS);
    const enc = Buffer.alloc(5);
    enc[0] = 0x4a;
    enc.writeInt32LE(v | 0, 1);
    out = Buffer.concat([out.subarray(0, i), enc, out.subarray(Math.min(out.length, i + 1 + width))]);
    did.push(`${i}=${v}`);
  }
  return [out, `pickle ints ${did.join(',')}`];
}

// TorchScript source edits: numbers, names and lines, so the compiler sees programs that parse
// but do not type-check, or do and then fail (or not) when run.
const CODE_WORDS = ['torch.empty', 'torch.zeros', 'torch.from_file', 'torch.save', 'self', 'None', 'Tensor', 'int', 'List[int]', 'Optional[Tensor]',
  'torch.view', 'torch.reshape', 'torch.cat', '__torch__.Foo', 'ops.prim.unchecked_cast', 'torch.as_strided', 'annotate(List[Tensor], [])'];
function codeEdit(r, data) {
  const text = data.toString('latin1');
  const lines = text.split('\n');
  const kind = r.int(5);
  if (kind === 0) {
    const nums = [...text.matchAll(/\b\d+\b/g)];
    if (nums.length) {
      const m = r.pick(nums);
      const v = String(r.pick([0, -1, 2 ** 31, 2 ** 62, 99999999999, 3, 1]));
      return [Buffer.from(text.slice(0, m.index) + v + text.slice(m.index + m[0].length), 'latin1'), `code number ${m[0]} -> ${v} at ${m.index}`];
    }
  }
  if (kind === 1) {
    const words = [...text.matchAll(/[A-Za-z_][A-Za-z_0-9.]*/g)];
    if (words.length) {
      const m = r.pick(words);
      const v = r.pick(CODE_WORDS);
      return [Buffer.from(text.slice(0, m.index) + v + text.slice(m.index + m[0].length), 'latin1'), `code word ${m[0]} -> ${v} at ${m.index}`];
    }
  }
  const i = r.int(lines.length);
  if (kind === 2) {
    lines.splice(i, 1);
    return [Buffer.from(lines.join('\n'), 'latin1'), `code drop line ${i}`];
  }
  if (kind === 3) {
    const j = r.int(lines.length);
    [lines[i], lines[j]] = [lines[j], lines[i]];
    return [Buffer.from(lines.join('\n'), 'latin1'), `code swap lines ${i},${j}`];
  }
  lines.splice(i, 0, lines[r.int(lines.length)]);
  return [Buffer.from(lines.join('\n'), 'latin1'), `code duplicate a line at ${i}`];
}

// Rewrites the archive with one entry changed, dropped, duplicated or renamed: reaches the
// pickles, the TorchScript source and the tensor records behind a valid zip.
function zipEntry(r, buf, other) {
  const { entries } = readZip(buf);
  const pickles = entries.filter((e) => /\.pkl$/.test(e.name) || /\/code\//.test(e.name) || /\/(version|byteorder)$/.test(e.name));
  const e = r.float() < 0.75 && pickles.length ? r.pick(pickles) : r.pick(entries);
  const i = entries.indexOf(e);
  const kind = r.int(12);
  let list = entries.map((x) => ({ name: x.name, data: x.data }));
  let what;
  if (kind < 3 && /\.pkl$/.test(e.name) && !/debug_pkl$/.test(e.name)) {
    const [data, how] = pickleInts(r, e.data);
    list[i].data = data;
    what = `${how} in ${e.name}`;
  } else if (kind < 3 && /\/code\/.*\.py$/.test(e.name)) {
    const [data, how] = codeEdit(r, e.data);
    list[i].data = data;
    what = `${how} in ${e.name}`;
  } else if (kind < 7) {
    const [data, how] = mutateBytes(r, e.data.length ? e.data : Buffer.from([0]), e.data);
    list[i].data = data;
    what = `${how} in ${e.name}`;
  } else if (kind === 7) {
    list.splice(i, 1);
    what = `drop ${e.name}`;
  } else if (kind === 8) {
    list.splice(i, 0, { name: e.name, data: Buffer.from(r.pick(entries).data) });
    what = `duplicate ${e.name} with other content`;
  } else if (kind === 9) {
    const names = [e.name + 'x', e.name.replace(/\/[^/]*$/, '/other'), 'x/' + e.name, e.name.toUpperCase(), e.name.replace(/^[^/]+/, 'other')];
    list[i].name = r.pick(names);
    what = `rename ${e.name} -> ${list[i].name}`;
  } else if (kind === 10) {
    const v = r.pick(['0', '1', '99', '-1', '18446744073709551616', 'x', '', '9\n9']);
    const ver = list.find((x) => /\/version$/.test(x.name));
    if (ver) ver.data = Buffer.from(v);
    what = `version = ${JSON.stringify(v)}`;
  } else {
    const { entries: others } = readZip(other);
    const o = r.pick(others);
    list[i].data = Buffer.from(o.data);
    what = `${e.name} replaced by ${o.name} of another archive`;
  }
  return [writeZip(list), what];
}

function safetensorsHeader(r, buf) {
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + len));
  const data = buf.subarray(8 + len);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = r.pick(names);
  const e = header[name];
  const kind = r.int(9);
  let what;
  if (kind === 0) {
    e.dtype = r.pick(['F32', 'F64', 'F16', 'BF16', 'I64', 'I32', 'U8', 'BOOL', 'I8', 'F8_E4M3', '', null, 7]);
    what = `dtype -> ${JSON.stringify(e.dtype)}`;
  } else if (kind === 1) {
    const choices = [[], [0], [-1], [2 ** 53], [1.5], [e.shape[0] + 1], [...e.shape, 1], e.shape.slice(1), [2 ** 31, 2 ** 31], 'x', null];
    e.shape = r.pick(choices);
    what = `shape -> ${JSON.stringify(e.shape)}`;
  } else if (kind === 2) {
    const [b, en] = e.data_offsets;
    const choices = [[en, b], [b + 1, en + 1], [b, en + 4], [0, 2 ** 53], [-4, en], [b], [b, en, 0], null, [b, data.length + 4]];
    e.data_offsets = r.pick(choices);
    what = `data_offsets -> ${JSON.stringify(e.data_offsets)}`;
  } else if (kind === 3) {
    delete header[name];
    what = `drop ${name}`;
  } else if (kind === 4) {
    header[name + '.extra'] = { ...e };
    what = `duplicate ${name}`;
  } else if (kind === 5) {
    header.__metadata__ = r.pick([{ format: 'pt' }, 'x', null, [1], { a: { b: 1 } }]);
    what = `__metadata__ -> ${JSON.stringify(header.__metadata__)}`;
  } else if (kind === 6) {
    header[name] = r.pick([null, 1, 'x', [], {}]);
    what = `${name} -> ${JSON.stringify(header[name])}`;
  } else if (kind === 7) {
    const out = Buffer.from(buf);
    const v = r.pick([0n, 1n, BigInt(len) - 1n, BigInt(len) + 1n, 2n ** 63n, 2n ** 64n - 1n, BigInt(buf.length)]);
    out.writeBigUInt64LE(v, 0);
    return [out, `header length ${len} -> ${v}`];
  } else {
    const json = JSON.stringify(header);
    const cut = r.int(json.length);
    const text = json.slice(0, cut) + r.pick(['', '"', '{', '}', ',', '\\u0000', '\uffff', '1e999']) + json.slice(cut + r.int(3));
    const jb = Buffer.from(text, 'utf8');
    const l = Buffer.alloc(8);
    l.writeBigUInt64LE(BigInt(jb.length));
    return [Buffer.concat([l, jb, data]), `header text edited at ${cut}`];
  }
  const jb = Buffer.from(JSON.stringify(header), 'utf8');
  const l = Buffer.alloc(8);
  l.writeBigUInt64LE(BigInt(jb.length));
  return [Buffer.concat([l, jb, data]), `${name}: ${what}`];
}

// ---- the corpus and one case ----------------------------------------------------------------

const BASES = [
  { file: 'toy_model.pt', kind: 'pt', input: [1, 3, 8, 8] },
  { file: 'classifier.pt', kind: 'pt', input: [1, 3, 16, 16] },
  { file: 'unet_traced.pt', kind: 'pt', input: [1, 3, 16, 16] },
  { file: 'unet_native.pt', kind: 'pt', input: [1, 3, 16, 16] },
  { file: 'unet.safetensors', kind: 'safetensors', input: [1, 3, 16, 16] },
  // torch.save files: read with readStateDict (every tensor summed), some loaded into a model.
  { file: 'trainer.pt', kind: 'torchsave', key: 'ema', linear: true },
  { file: 'dtypes.pt', kind: 'torchsave' },
  { file: 'views.pt', kind: 'torchsave' },
  { file: 'linear_legacy.pt', kind: 'legacy', linear: true },
  { file: 'dtypes_legacy.pt', kind: 'legacy' },
  { file: 'views_legacy.pt', kind: 'legacy' },
];
const TORCH_SAVE = ['trainer.pt', 'dtypes.pt', 'views.pt', 'linear_legacy.pt', 'dtypes_legacy.pt', 'views_legacy.pt'];
let bases = BASES;

function makeCorpus(dir) {
  const lib = require(LIB);
  fs.copyFileSync(path.join(FIXTURES, 'diffusion', 'toy_model.pt'), path.join(dir, 'toy_model.pt'));
  for (const f of ['classifier.pt', 'unet_traced.pt', 'unet.safetensors']) {
    fs.copyFileSync(path.join(FIXTURES, 'reference-case', f), path.join(dir, f));
  }
  for (const f of TORCH_SAVE) fs.copyFileSync(path.join(FIXTURES, 'torch-save', f), path.join(dir, f));
  const unet = new lib.Unet({ dim: 8, dimMults: [1, 2], channels: 3 });
  unet.loadStateDict(path.join(dir, 'unet.safetensors'));
  unet.save(path.join(dir, 'unet_native.pt'));
}

function makeCase(index, seed, corpus) {
  const r = rng((seed * 1000003 + index * 7919) >>> 0);
  const base = bases[index % bases.length];
  const buf = corpus[base.file];
  const other = corpus[r.pick(BASES.filter((b) => b.kind === base.kind)).file];
  let bytes;
  let what;
  if (base.kind === 'torchsave') {
    const k = r.int(10);
    if (k < 2) [bytes, what] = mutateBytes(r, buf, other);
    else if (k < 3) [bytes, what] = zipField(r, buf);
    else if (k < 6) [bytes, what] = zipEntry(r, buf, other);
    else {
      const entries = readZip(buf).entries.map((e) => ({ name: e.name, data: e.data }));
      const pkl = entries.find((e) => /\/data\.pkl$/.test(e.name));
      const [data, how] = pickleMutation(r, pkl.data, pickleInts);
      pkl.data = data;
      [bytes, what] = [writeZip(entries), `${how} in ${pkl.name}`];
    }
  } else if (base.kind === 'legacy') {
    [bytes, what] = r.float() < 0.4 ? mutateBytes(r, buf, other) : pickleMutation(r, buf, pickleInts);
  } else if (base.kind === 'pt') {
    const k = r.int(10);
    if (k < 3) [bytes, what] = mutateBytes(r, buf, other);
    else if (k < 5) [bytes, what] = zipField(r, buf);
    else [bytes, what] = zipEntry(r, buf, other);
  } else {
    [bytes, what] = r.float() < 0.5 ? mutateBytes(r, buf, other) : safetensorsHeader(r, buf);
  }
  return { base, bytes, what: `${base.file}: ${what}` };
}

function loadCorpus(dir, opts) {
  const corpus = {};
  for (const b of BASES) corpus[b.file] = fs.readFileSync(path.join(dir, b.file));
  bases = BASES.filter((b) => !opts.kinds || opts.kinds.includes(b.kind));
  if (bases.length === 0) throw new Error(`--kinds ${opts.kinds} matches no corpus file`);
  return corpus;
}

// Loads and runs one mutated file; throws what the library throws.
function runCase(lib, c, file, unet) {
  const { torch, jit } = lib;
  if (c.base.kind === 'torchsave' || c.base.kind === 'legacy') {
    torch.tidy(() => {
      const options = c.base.key ? { key: c.base.key } : {};
      for (const t of Object.values(lib.readStateDict(file, options))) t.to('float64').sum().item();
      if (c.base.linear) {
        const m = new lib.LinearClassifier({ imageSize: 2, channels: 1, numClasses: 3 });
        m.loadStateDict(file, options);
        torch.noGrad(() => m.forward(torch.randn([1, 1, 2, 2]), torch.tensor([3])));
        m.dispose();
      }
    });
    return;
  }
  torch.tidy(() => {
    const x = torch.randn(c.base.input);
    const t = torch.tensor([3]);
    let m;
    if (c.base.kind === 'pt') {
      m = jit.load(file);
      m.forwardSchema;
      m.stateDict();
    } else {
      unet.loadStateDict(file);
      m = unet;
    }
    torch.noGrad(() => m.forward(x, t));
    if (c.base.kind === 'pt') m.dispose();
  });
}

// ---- child: many cases, the index on disk before each -----------------------------------

function child(opts) {
  const lib = require(LIB);
  const corpus = loadCorpus(opts.dir, opts);
  const unet = new lib.Unet({ dim: 8, dimMults: [1, 2], channels: 3 });
  const progress = path.join(opts.dir, 'progress');
  const results = path.join(opts.dir, 'results');
  const lines = [];
  const flush = () => {
    if (lines.length) fs.appendFileSync(results, lines.join('\n') + '\n');
    lines.length = 0;
  };
  for (let i = opts.from; i < opts.to; i++) {
    const c = makeCase(i, opts.seed, corpus);
    const file = path.join(opts.dir, `case.${c.base.kind}`);
    fs.writeFileSync(file, c.bytes);
    flush();
    fs.writeFileSync(progress, String(i));
    let outcome = 'ok';
    let message = '';
    try {
      runCase(lib, c, file, unet);
    } catch (err) {
      if (!(err instanceof Error)) throw new Error(`case ${i} threw a non-Error: ${String(err)}`);
      outcome = 'error';
      message = err.message.split('\n')[0].slice(0, 160);
    }
    lines.push(JSON.stringify({ i, outcome, message }));
  }
  lines.push(JSON.stringify({ rssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }));
  flush();
  fs.writeFileSync(progress, 'done');
}

// ---- parent ---------------------------------------------------------------------------------

function runChild(opts, from, to) {
  return new Promise((resolve) => {
    const progress = path.join(opts.dir, 'progress');
    fs.writeFileSync(progress, '');
    const kinds = opts.kinds ? ['--kinds', opts.kinds.join(',')] : [];
    const p = spawn(process.execPath, [__filename, '--child', '--from', String(from), '--to', String(to), '--seed', String(opts.seed), '--dir', opts.dir, ...kinds], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    p.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-4000);
    });
    let last = '';
    let lastChange = Date.now();
    let hung = false;
    const watch = setInterval(() => {
      const now = fs.readFileSync(progress, 'utf8');
      if (now !== last) {
        last = now;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > opts.hangMs) {
        hung = true;
        p.kill('SIGKILL');
      }
    }, 500);
    p.on('exit', (code, signal) => {
      clearInterval(watch);
      resolve({ code, signal, hung, stderr, progress: fs.readFileSync(progress, 'utf8') });
    });
  });
}

async function parent(opts) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-fuzz-'));
  opts.dir = dir;
  makeCorpus(dir);
  const corpus = loadCorpus(dir, opts);
  // Self-check: the zip writer's output of an unchanged archive loads.
  {
    const lib = require(LIB);
    const f = path.join(dir, 'rezip.pt');
    fs.writeFileSync(f, writeZip(readZip(corpus['unet_traced.pt']).entries));
    lib.jit.load(f).dispose();
  }
  const counts = { ok: 0, error: 0, crash: 0, hang: 0 };
  let peakRssMiB = 0;
  const messages = new Map();
  const failures = [];
  const started = Date.now();
  let next = 0;
  const resultsFile = path.join(dir, 'results');
  while (next < opts.cases) {
    const to = Math.min(opts.cases, next + opts.batch);
    if (fs.existsSync(resultsFile)) fs.rmSync(resultsFile);
    const r = await runChild(opts, next, to);
    const done = fs.existsSync(resultsFile) ? fs.readFileSync(resultsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
    for (const d of done) {
      if (d.rssMiB !== undefined) {
        peakRssMiB = Math.max(peakRssMiB, d.rssMiB);
        continue;
      }
      counts[d.outcome]++;
      if (d.outcome === 'error') {
        const key = d.message.replace(/\/tmp\/gd-fuzz-[^ ]*/g, '<file>').replace(/\d+/g, 'N');
        messages.set(key, (messages.get(key) || 0) + 1);
      }
    }
    if (r.progress === 'done' && r.code === 0) {
      next = to;
    } else {
      const i = Number(r.progress);
      if (!Number.isInteger(i)) throw new Error(`child failed before its first case: code ${r.code} signal ${r.signal}\n${r.stderr}`);
      const c = makeCase(i, opts.seed, corpus);
      const kind = r.hung ? 'hang' : 'crash';
      counts[kind]++;
      const why = r.hung ? `no progress for ${opts.hangMs} ms` : r.signal ? `signal ${r.signal}` : `exit code ${r.code}`;
      const tail = r.stderr.trim().split('\n').slice(-3).join(' | ');
      failures.push({ i, kind, why, what: c.what, stderr: tail });
      console.log(`${kind.toUpperCase()} case ${i} (${why}): ${c.what}\n    ${tail}`);
      if (opts.keep) {
        fs.mkdirSync(opts.keep, { recursive: true });
        fs.writeFileSync(path.join(opts.keep, `case-${i}.${c.base.kind}`), c.bytes);
      }
      next = i + 1;
    }
    const total = counts.ok + counts.error + counts.crash + counts.hang;
    process.stderr.write(`\r${total}/${opts.cases} cases, ${((Date.now() - started) / 1000).toFixed(0)} s: ${JSON.stringify(counts)}   `);
  }
  process.stderr.write('\n');
  const seconds = (Date.now() - started) / 1000;
  let commit = 'unknown';
  try {
    commit = require('child_process').execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    if (require('child_process').execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'native', 'lib', 'scripts'], { cwd: ROOT, encoding: 'utf8' }).trim()) commit += ' + uncommitted changes';
  } catch {
    // not a git checkout
  }
  console.log(JSON.stringify({ commit, cases: opts.cases, seed: opts.seed, kinds: opts.kinds || 'all', seconds: Math.round(seconds), counts, peakRssMiB }, null, 2));
  console.log('most common errors:');
  for (const [m, n] of [...messages.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${String(n).padStart(5)}  ${m}`);
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(counts.crash + counts.hang > 0 ? 1 : 0);
}

function only(opts) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-fuzz-'));
  makeCorpus(dir);
  const c = makeCase(opts.only, opts.seed, loadCorpus(dir, opts));
  const file = path.join(dir, `case.${c.base.kind}`);
  fs.writeFileSync(file, c.bytes);
  console.log(`case ${opts.only}: ${c.what} (${file})`);
  const lib = require(LIB);
  try {
    runCase(lib, c, file, new lib.Unet({ dim: 8, dimMults: [1, 2], channels: 3 }));
    console.log('ok');
  } catch (err) {
    console.log('error:', err.message);
  }
}

const opts = args();
if (opts.child) child(opts);
else if (opts.only !== null) only(opts);
else parent(opts).catch((err) => {
  console.error(err);
  process.exit(2);
});
