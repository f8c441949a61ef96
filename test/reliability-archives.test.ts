// Hostile torch.save archives (issue 21, A): what the reader allocates is bounded by the file and
// by what the pickle declares, an archive that readers could disagree on is refused, and special
// files and impossible views are named for what they are. The archives are made here from the
// fixture linear.pt (scripts/fixtures/torch_save.py) by a zip writer that can lie.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { readStateDict, torch } from '../lib';
import { FIXTURES } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { readZip, writeZip } = require('../../scripts/fuzz-zip.js') as {
  readZip: (b: Buffer) => { entries: { name: string; data: Buffer }[] };
  writeZip: (entries: CraftedEntry[]) => Buffer;
};

interface CraftedEntry {
  name: string;
  data: Buffer;
  deflate?: boolean;
  // Index of an earlier entry whose local header and bytes this one's central record points at.
  sameBytesAs?: number;
}

// A zip whose central directory says what the entries say, true or not (scripts/fuzz-zip.js).
const craftZip = writeZip;

// One pickle opcode stream: the bytes of a state dict {'x': tensor} whose view is given.
function viewPickle(size: number[], stride: number[]): Buffer {
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    return b;
  };
  const str = (s: string) => Buffer.concat([Buffer.from('X'), u32(s.length), Buffer.from(s)]);
  const ints = (xs: number[]) => Buffer.concat([Buffer.from('('), ...xs.map((x) => Buffer.concat([Buffer.from('J'), u32(x)])), Buffer.from('t')]);
  return Buffer.concat([
    Buffer.from([0x80, 2]),
    Buffer.from('}'),
    str('x'),
    Buffer.from('ctorch._utils\n_rebuild_tensor_v2\n('),
    Buffer.from('('),
    str('storage'),
    Buffer.from('ctorch\nFloatStorage\n'),
    str('0'),
    str('cpu'),
    Buffer.from('K\x01tQ'), // numel 1, TUPLE, BINPERSID
    Buffer.from('K\x00'), // storage offset
    ints(size),
    ints(stride),
    Buffer.from([0x89]), // requires_grad False
    Buffer.from('}'), // backward hooks
    Buffer.from('tRs.'),
  ]);
}

describe('reliability: hostile torch.save archives', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-archives-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const linear = readZip(fs.readFileSync(path.join(FIXTURES, 'torch-save', 'linear.pt'))).entries;
  const root = linear[0].name.slice(0, linear[0].name.indexOf('/') + 1); // torch.save's folder
  const write = (name: string, bytes: Buffer): string => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, bytes);
    return p;
  };
  const rssMiB = () => process.memoryUsage().rss / 2 ** 20;

  it('the crafted linear.pt reads as the fixture does (the writer is faithful)', () => {
    const sd = readStateDict(write('faithful.pt', craftZip(linear.map(({ name, data }) => ({ name, data })))));
    assert.deepStrictEqual(Object.keys(sd), ['linear_t.weight', 'linear_t.bias', 'linear_img.weight', 'linear_img.bias']);
    torch.dispose(Object.values(sd));
  });

  it('a byteorder entry that inflates to 64 MiB is refused from its header, before anything is inflated', () => {
    const bomb = craftZip(linear.map(({ name, data }) => (name.endsWith('/byteorder') ? { name, data: Buffer.alloc(64 << 20, 'l'), deflate: true } : { name, data })));
    assert.ok(bomb.length < 1 << 20, `the file is ${bomb.length} bytes`);
    const p = write('byteorder-bomb.pt', bomb);
    const before = rssMiB();
    assert.throws(() => readStateDict(p), {
      message: `readStateDict: ${p} is not a valid torch.save file: its byteorder entry claims 67108864 bytes, where torch.save writes 'little' or 'big'`,
    });
    const grew = rssMiB() - before;
    console.log(`      ${bomb.length}-byte file claiming a 64 MiB byteorder: RSS grew ${grew.toFixed(1)} MiB`);
    assert.ok(grew < 32, `RSS grew ${grew} MiB`);
  });

  it('1,000 entry names sharing one 1 MiB block are refused before any is read', () => {
    const entries: CraftedEntry[] = linear.map(({ name, data }) => ({ name, data }));
    const block = entries.push({ name: `${root}data/block`, data: Buffer.alloc(1 << 20, 7) }) - 1;
    for (let i = 0; i < 1000; i++) entries.push({ name: `${root}data/s${i}`, data: Buffer.alloc(0), sameBytesAs: block });
    const p = write('shared-block.pt', craftZip(entries));
    const before = rssMiB();
    assert.throws(() => readStateDict(p), {
      message: `readStateDict: ${p} is not a valid torch.save file: its zip entries ${root}data/block and ${root}data/s0 share bytes (a damaged or crafted archive)`,
    });
    const grew = rssMiB() - before;
    console.log(`      ${fs.statSync(p).size}-byte file, 1,001 names of one block: RSS grew ${grew.toFixed(1)} MiB`);
    assert.ok(grew < 32, `RSS grew ${grew} MiB`);
  });

  it('two entries of one name (data.pkl, a storage) are refused: readers disagree on which counts', () => {
    for (const dup of [`${root}data.pkl`, `${root}data/0`]) {
      const entries: CraftedEntry[] = linear.map(({ name, data }) => ({ name, data }));
      const first = entries.find((e) => e.name === dup)!;
      entries.push({ name: dup, data: Buffer.from(first.data) });
      const p = write('duplicate.pt', craftZip(entries));
      assert.throws(() => readStateDict(p), {
        message: `readStateDict: ${p} is not a valid torch.save file: it holds two zip entries named ${dup} (a damaged or crafted archive)`,
      });
    }
  });

  it('a view that claims more than 2^63 elements of a one-element storage is named, not a LibTorch overflow', () => {
    const entries: CraftedEntry[] = [
      { name: 'archive/data.pkl', data: viewPickle([2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1], [0, 0, 0]) },
      { name: 'archive/byteorder', data: Buffer.from('little') },
      { name: 'archive/data/0', data: Buffer.alloc(4) },
    ];
    const p = write('overflow.pt', craftZip(entries));
    assert.throws(() => readStateDict(p), {
      message: `readStateDict: ${p} is not a valid torch.save file: its pickle gives a tensor of size [2147483647, 2147483647, 2147483647], more than 2^63 elements`,
    });
    // The same pickle with a view that fits reads: the message above is about the size alone.
    entries[0].data = viewPickle([3, 2], [0, 0]);
    const sd = readStateDict(write('broadcast.pt', craftZip(entries)));
    assert.deepStrictEqual(sd.x.shape, [3, 2]);
    torch.dispose(Object.values(sd));
  });

  it('a symlink loop and /proc/self/mem are named for what they are', () => {
    const a = path.join(tmp, 'loop-a');
    const b = path.join(tmp, 'loop-b');
    fs.symlinkSync(b, a);
    fs.symlinkSync(a, b);
    assert.throws(() => readStateDict(a), { message: `readStateDict: ${a} cannot be opened: its symbolic links form a loop (or nest too deep)` });
    if (!fs.existsSync('/proc/self/mem')) return;
    assert.throws(() => readStateDict('/proc/self/mem'), {
      message: /^readStateDict: \/proc\/self\/mem is not a regular file on disk: it reports a size of 0 and reading it fails \(.+\), as special files such as \/proc\/self\/mem do$/,
    });
  });

  it('pickle protocol 0 (text persistent ids, which torch.load cannot read either) and quantized tensors say why', () => {
    const p0 = Buffer.concat([Buffer.from('L119547037146038801333356L\n.I1001\n.'), Buffer.from('(dp0\nVx\np1\nP0\ns.')]);
    const p = write('protocol0.pt', p0);
    assert.throws(() => readStateDict(p), /pickle protocol 0\), which torch.load cannot read either/);
    const q = Buffer.concat([Buffer.from([0x80, 2]), Buffer.from('}X\x01\x00\x00\x00xctorch._utils\n_rebuild_qtensor\n)Rs.')]);
    const pq = write('quantized.pt', craftZip([{ name: 'archive/data.pkl', data: q }, { name: 'archive/byteorder', data: Buffer.from('little') }]));
    assert.throws(() => readStateDict(pq), {
      message: `readStateDict: ${pq} holds a tensor that torch rebuilds with torch._utils._rebuild_qtensor (a quantized, sparse, nested or wrapped tensor), which this reader does not read: it reads dense floating, integer, bool, complex and float8 tensors`,
    });
    const qdtype = Buffer.concat([Buffer.from([0x80, 2]), Buffer.from('}X\x01\x00\x00\x00xctorch\nqint8\ns.')]);
    const pd = write('qint8.pt', craftZip([{ name: 'archive/data.pkl', data: qdtype }, { name: 'archive/byteorder', data: Buffer.from('little') }]));
    assert.throws(() => readStateDict(pd), { message: /holds a tensor of type torch\.qint8, which this reader does not read/ });
  });
});
