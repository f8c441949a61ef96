// The torch.save writer (native/checkpoints/torch_save_writer.h): what writeStateDict writes,
// readStateDict reads back bit for bit in every dtype we write, and Python's
// torch.load(path, weights_only=True) loads with equal values, dtypes and shapes (small files and
// the zip64 form); a failed write leaves no file behind.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readStateDict, Tensor, torch, writeStateDict } from '../lib';
import { testPython } from './helpers';

// Values as strings: exact for every dtype (int64 beyond 2^53, float16 and bfloat16 widened).
function valuesOf(t: Tensor): string[] {
  if (t.dtype === 'int64') return Array.from(t.contiguous().data() as BigInt64Array, (v) => v.toString());
  if (t.dtype === 'bool') return Array.from(t.to('int32').contiguous().data() as Int32Array, (v) => String(v));
  const wide = t.dtype === 'float16' || t.dtype === 'bfloat16' ? t.to('float32') : t;
  return Array.from(wide.contiguous().data() as ArrayLike<number>, (v) => String(v));
}

const PY_DUMP = `
import json, sys, torch
d = torch.load(sys.argv[1], weights_only=True)
out = {}
for k, t in d.items():
    w = t.float() if t.dtype in (torch.float16, torch.bfloat16) else t.int() if t.dtype == torch.bool else t
    out[k] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "values": [str(int(v)) if not t.is_floating_point() else repr(float(v)).replace("inf", "Infinity") for v in w.reshape(-1).tolist()]}
print(type(d).__name__, json.dumps(out))
`;

describe('torch.save writer', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-torch-save-writer-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const make = (): Record<string, Tensor> => ({
    'f32.weight': torch.randn([3, 4, 2]),
    f64: torch.tensor([1.5, -2.25, 1e300], { dtype: 'float64' }),
    f16: torch.tensor([0.5, -1.25, 65504], { dtype: 'float16' }),
    bf16: torch.tensor([1.5, 2, -3e38], { dtype: 'bfloat16' }),
    i64: torch.tensor([0n, -1n, 9007199254740993n, -(2n ** 63n)], { dtype: 'int64' }),
    i32: torch.tensor([7, -2147483648], { dtype: 'int32' }),
    u8: torch.tensor([0, 255], { dtype: 'uint8' }),
    b: torch.tensor([true, false, true]),
    scalar: torch.tensor(3.25),
    empty: torch.zeros([0, 5]),
    strided: torch.arange(12).reshape([3, 4]).transpose(0, 1),
  });

  for (const zip64 of [false, true]) {
    it(`reads back what it writes, and torch.load(weights_only=True) loads it with equal values${zip64 ? ' (zip64 records)' : ''}`, function () {
      const before = torch.memory().tensors;
      const file = path.join(tmp, zip64 ? 'sd64.pt' : 'sd.pt');
      torch.tidy(() => {
        const tensors = make();
        writeStateDict(file, tensors, { zip64 });
        const back = readStateDict(file);
        assert.deepStrictEqual(Object.keys(back), Object.keys(tensors));
        for (const [k, t] of Object.entries(tensors)) {
          assert.strictEqual(back[k].dtype, t.dtype, k);
          assert.deepStrictEqual(back[k].shape, t.shape, k);
          assert.deepStrictEqual(valuesOf(back[k]), valuesOf(t), k);
        }
        console.log(`      ${Object.keys(tensors).length} tensors, ${fs.statSync(file).size} bytes: read back equal by our reader`);
        const r = spawnSync(testPython(), ['-c', PY_DUMP, file], { encoding: 'utf8' });
        assert.strictEqual(r.status, 0, r.stderr);
        const [kind, json] = [r.stdout.slice(0, r.stdout.indexOf(' ')), r.stdout.slice(r.stdout.indexOf(' ') + 1)];
        assert.strictEqual(kind, 'OrderedDict');
        const theirs = JSON.parse(json) as Record<string, { dtype: string; shape: number[]; values: string[] }>;
        assert.deepStrictEqual(Object.keys(theirs), Object.keys(tensors));
        for (const [k, t] of Object.entries(tensors)) {
          assert.strictEqual(theirs[k].dtype, t.dtype, k);
          assert.deepStrictEqual(theirs[k].shape, t.shape, k);
          const ours = valuesOf(t).map((v) => (t.dtype === 'int64' || t.dtype === 'int32' || t.dtype === 'uint8' || t.dtype === 'bool' ? v : String(Number(v))));
          assert.deepStrictEqual(theirs[k].values.map((v) => (t.dtype === 'int64' || t.dtype === 'int32' || t.dtype === 'uint8' || t.dtype === 'bool' ? v : String(Number(v)))), ours, k);
        }
        console.log(`      torch.load(weights_only=True): ${Object.keys(theirs).length} tensors, dtypes, shapes and values equal`);
      });
      assert.strictEqual(torch.memory().tensors, before);
    });
  }

  it('writes through a temporary file: a path it cannot write leaves nothing, an existing file is replaced whole', () => {
    torch.tidy(() => {
      const missing = path.join(tmp, 'no-such-dir', 'x.pt');
      assert.throws(() => writeStateDict(missing, { a: torch.ones([2]) }), /torch.save: .*no-such-dir\/x\.pt cannot be created \(No such file or directory\)/);
      const file = path.join(tmp, 'replace.pt');
      writeStateDict(file, { a: torch.ones([1000]) });
      writeStateDict(file, { b: torch.zeros([2]) });
      assert.deepStrictEqual(Object.keys(readStateDict(file)), ['b']);
      assert.deepStrictEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')), []);
    });
  });

  it('rejects what is not a state dict of tensors, naming it', () => {
    assert.throws(() => writeStateDict(path.join(tmp, 'bad.pt'), { a: 3 as unknown as Tensor }), /writeStateDict: a is not a Tensor/);
    assert.throws(() => writeStateDict(path.join(tmp, 'bad.pt'), {}, { zip: true } as never), /zip/);
    assert.ok(!fs.existsSync(path.join(tmp, 'bad.pt')));
  });
});
