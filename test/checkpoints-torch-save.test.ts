// torch.save() checkpoints read natively (native/checkpoints): values equal to what Python saved,
// every dtype, both formats, views sharing a storage; a Trainer checkpoint's 'model' and 'ema';
// the format told by content, never by name; pickles that would run code refused by name with
// nothing run; devices and /proc files refused before a byte is read; the first mismatch named.
// Fixtures: scripts/fixtures/torch_save.py (Python torch 2.13).
import * as assert from 'assert';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { jit, LinearClassifier, loadSafetensors, readStateDict, Tensor, torch, Unet } from '../lib';
import { FIXTURES, REFERENCE } from './helpers';

const DIR = path.join(FIXTURES, 'torch-save');
const EXPECTED: Record<string, Record<string, { dtype: string; shape: number[]; values: (number | boolean | string)[] }>> = JSON.parse(
  fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8'),
);
const MARKER = '/tmp/guided-diffusion-torch-save-payload-ran';
const fixture = (name: string): string => path.join(DIR, name);

// The LinearClassifier whose parameter names the fixtures' state dicts carry.
const linear = (numClasses = 3, imageSize = 2): LinearClassifier => new LinearClassifier({ imageSize, channels: 1, numClasses });

// Values as plain numbers (booleans as 0/1, int64 as strings, exact beyond 2^53).
function valuesOf(t: Tensor): (number | string)[] {
  if (t.dtype === 'int64') return Array.from(t.data() as BigInt64Array, (v) => v.toString());
  const wide = t.dtype === 'float32' || t.dtype === 'float64' || t.dtype === 'int32' ? t : t.to(t.dtype === 'float16' || t.dtype === 'bfloat16' ? 'float32' : 'int32');
  return Array.from(wide.contiguous().data() as ArrayLike<number>);
}

function expectedValues(e: { dtype: string; values: (number | boolean | string)[] }): (number | string)[] {
  return e.values.map((v) => (typeof v === 'boolean' ? Number(v) : v));
}

describe('checkpoints: torch.save files', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-torch-save-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const copy = (from: string, name: string): string => {
    const p = path.join(tmp, name);
    fs.copyFileSync(from, p);
    return p;
  };

  for (const file of ['dtypes.pt', 'dtypes_legacy.pt']) {
    it(`${file}: every dtype, values equal to what Python saved`, () => {
      const sd = readStateDict(fixture(file));
      const expected = EXPECTED[file];
      assert.deepStrictEqual(Object.keys(sd), ['f32', 'f64', 'f16', 'bf16', 'i64', 'i32', 'i16', 'i8', 'u8', 'b', 'scalar', 'empty']);
      const ours: Record<string, string> = { f32: 'float32', f64: 'float64', f16: 'float16', bf16: 'bfloat16', i64: 'int64', i32: 'int32', u8: 'uint8', b: 'bool', scalar: 'float32', empty: 'float32' };
      for (const [name, t] of Object.entries(sd)) {
        const e = expected[name];
        assert.deepStrictEqual(t.shape, e.shape, `${name} shape`);
        if (ours[name]) assert.strictEqual(t.dtype, ours[name], `${name} dtype`);
        assert.deepStrictEqual(valuesOf(t), expectedValues(e), `${name} values`);
      }
      assert.strictEqual((sd.i64.data() as BigInt64Array)[0], 2n ** 40n + 1n);
      torch.dispose(Object.values(sd));
    });
  }

  for (const file of ['views.pt', 'views_legacy.pt']) {
    it(`${file}: views keep their offsets and strides, and share one storage as in Python`, () => {
      const sd = readStateDict(fixture(file));
      for (const [name, e] of Object.entries(EXPECTED[file])) {
        assert.deepStrictEqual(sd[name].shape, e.shape, name);
        assert.deepStrictEqual(valuesOf(sd[name]), e.values, name);
      }
      assert.deepStrictEqual(valuesOf(sd.view), [4, 6, 8, 10]);
      assert.deepStrictEqual(valuesOf(sd.col), [1, 5, 9]);
      sd.base.add_(100); // one storage: the views see it
      assert.deepStrictEqual(valuesOf(sd.view), [104, 106, 108, 110]);
      assert.deepStrictEqual(valuesOf(sd.t).slice(0, 3), [100, 104, 108]);
      torch.dispose(Object.values(sd));
    });
  }

  it('loadStateDict: an OrderedDict state_dict (zip and legacy), a nested {state_dict}, a float16 dict converted to float32', () => {
    const weights = EXPECTED['linear.pt'];
    for (const file of ['linear.pt', 'linear_legacy.pt', 'nested.pt']) {
      const m = linear().loadStateDict(fixture(file));
      const sd = m.stateDict();
      for (const name of ['linear_t.weight', 'linear_t.bias', 'linear_img.weight', 'linear_img.bias']) {
        const key = file === 'nested.pt' ? `state_dict.${name}` : name;
        assert.deepStrictEqual(valuesOf(sd[name]), (EXPECTED[file][key] ?? weights[name]).values, `${file} ${name}`);
      }
      m.dispose();
    }
    const m = linear().loadStateDict(fixture('linear_dict_f16.pt'));
    const w = m.stateDict()['linear_img.weight'];
    assert.strictEqual(w.dtype, 'float32');
    assert.deepStrictEqual(valuesOf(w), EXPECTED['linear_dict_f16.pt']['linear_img.weight'].values);
  });

  it('dtypes_v3.pt: complex64/128, uint16/32/64 and float8 (_rebuild_tensor_v3 over untyped storages), views included', () => {
    const sd = readStateDict(fixture('dtypes_v3.pt'));
    const expected = EXPECTED['dtypes_v3.pt'];
    assert.deepStrictEqual(Object.keys(sd), ['c64', 'c128', 'u16', 'u16_view', 'u32', 'u64', 'f8e4m3', 'f8e5m2']);
    const names: Record<string, string> = { c64: 'ComplexFloat', c128: 'ComplexDouble', u16: 'UInt16', u16_view: 'UInt16', u32: 'UInt32', u64: 'UInt64', f8e4m3: 'Float8_e4m3fn', f8e5m2: 'Float8_e5m2' };
    for (const [name, t] of Object.entries(sd)) {
      const e = expected[name];
      assert.strictEqual(t.dtype as string, names[name], `${name} dtype`);
      assert.deepStrictEqual(t.shape, e.shape, `${name} shape`);
      const got = Array.from(t.to('float64').contiguous().data() as Float64Array);
      if (name.startsWith('c')) {
        // The real part by a cast, the imaginary part through the modulus.
        const pairs = e.values as unknown as [number, number][];
        assert.deepStrictEqual(got, pairs.map(([re]) => re), `${name} real part`);
        const modulus = Array.from(t.abs().to('float64').contiguous().data() as Float64Array);
        pairs.forEach(([re, im], i) => assert.ok(Math.abs(modulus[i] - Math.hypot(re, im)) <= 1e-6 * Math.hypot(re, im), `${name}[${i}] modulus ${modulus[i]}`));
      } else {
        assert.deepStrictEqual(got, e.values.map(Number), `${name} values`);
      }
    }
    assert.deepStrictEqual(Array.from(sd.u64.to('int64').data() as BigInt64Array), [0n, 2n ** 40n + 3n, 7n]);
    torch.dispose(Object.values(sd));
  });

  for (const protocol of [1, 2, 3, 4, 5]) {
    it(`a state dict saved with pickle_protocol ${protocol}, zip and legacy, reads as Python wrote it`, () => {
      for (const file of [`proto${protocol}.pt`, `proto${protocol}_legacy.pt`]) {
        const sd = readStateDict(fixture(file));
        assert.deepStrictEqual(Object.keys(sd), ['w', 'n'], file);
        assert.deepStrictEqual(valuesOf(sd.w), EXPECTED[file].w.values, file);
        assert.deepStrictEqual(valuesOf(sd.n), EXPECTED[file].n.values, file);
        assert.deepStrictEqual(valuesOf(sd.n), ['1099511627776', '-3'], file);
        torch.dispose(Object.values(sd));
      }
    });
  }

  it('nn.Parameters saved directly (_rebuild_parameter) read as tensors', () => {
    const sd = readStateDict(fixture('params.pt'));
    assert.deepStrictEqual(valuesOf(sd.w), EXPECTED['params.pt'].w.values);
    assert.deepStrictEqual(valuesOf(sd.b), [1, -1]);
    torch.dispose(Object.values(sd));
  });

  it('torch.save(model), the module object itself, is refused by its class, with nothing run', () => {
    const p = fixture('whole_module.pt');
    assert.throws(() => linear().loadStateDict(p), {
      message:
        `loadStateDict: ${p} refers to __main__.Linear, which is not part of a state dict: only tensors, dicts, lists, tuples, ` +
        'numbers and strings are read from a torch.save file, and nothing in it is run',
    });
  });

  describe('a denoising-diffusion-pytorch Trainer checkpoint (model-N.pt)', () => {
    const trainer = fixture('trainer.pt');
    const want = EXPECTED['trainer.pt'];

    it("{ key: 'model' } and { key: 'ema' } load the model's and the EMA's weights", () => {
      const m = linear().loadStateDict(trainer, { key: 'model' });
      assert.deepStrictEqual(valuesOf(m.stateDict()['linear_img.weight']), want['model.linear_img.weight'].values);
      m.loadStateDict(trainer, { key: 'ema' });
      assert.deepStrictEqual(valuesOf(m.stateDict()['linear_img.weight']), want['ema.ema_model.linear_img.weight'].values);
      assert.deepStrictEqual(valuesOf(m.stateDict()['linear_t.bias']), want['ema.ema_model.linear_t.bias'].values);
      assert.deepStrictEqual(valuesOf(m.stateDict()['linear_t.bias']), [101, 101.25, 101.5]);
      // readStateDict gives the EMA weights without their prefix, and nothing else of the wrapper.
      const ema = readStateDict(trainer, { key: 'ema' });
      assert.deepStrictEqual(Object.keys(ema), ['linear_t.weight', 'linear_t.bias', 'linear_img.weight', 'linear_img.bias']);
      torch.dispose(Object.values(ema));
    });

    it('without a key, the error names the choices', () => {
      assert.throws(() => linear().loadStateDict(trainer), {
        name: 'Error',
        message: `loadStateDict: ${trainer} holds several state dicts: 'model', 'ema' (EMA weights); choose one with the key option, e.g. { key: 'model' }`,
      });
      assert.throws(() => linear().loadStateDict(trainer, { key: 'opt' }), {
        message: `loadStateDict: ${trainer} has no state dict under 'opt'; its state dicts are 'model', 'ema' (EMA weights)`,
      });
      assert.throws(() => readStateDict(fixture('linear.pt'), { key: 'model' }), {
        message: `readStateDict: ${fixture('linear.pt')} has no state dict under 'model': it is a dict of 'linear_t.weight', 'linear_t.bias', 'linear_img.weight', 'linear_img.bias'`,
      });
      assert.throws(() => linear().loadStateDict(trainer, { key: 3 as never }), { name: 'TypeError', message: 'Expected a non-empty string for key but received 3' });
      const st = path.join(REFERENCE, 'unet.safetensors');
      assert.throws(() => readStateDict(st, { key: 'ema' }), {
        message: `readStateDict: ${st} is a safetensors file, which holds one state dict: the key option ('ema') is for torch.save files`,
      });
    });
  });

  describe('pickles that name anything but tensors and containers are refused, and nothing runs', () => {
    const cases: [string, string][] = [
      ['evil_os_system.pt', 'posix.system'],
      ['evil_eval.pt', '__builtin__.eval'],
      ['evil_class.pt', '__main__.Plain'],
      ['evil_legacy.pt', 'posix.system'],
    ];
    for (const [file, global] of cases) {
      it(`${file}: refers to ${global}`, () => {
        fs.rmSync(MARKER, { force: true });
        const p = fixture(file);
        assert.throws(() => linear().loadStateDict(p), {
          message:
            `loadStateDict: ${p} refers to ${global}, which is not part of a state dict: only tensors, dicts, lists, tuples, ` +
            'numbers and strings are read from a torch.save file, and nothing in it is run',
        });
        assert.strictEqual(fs.existsSync(MARKER), false, 'the payload would have created the marker file');
      });
    }
  });

  describe('the format is told by content, never by name', () => {
    it('a safetensors file named .bin (or .pt) loads', () => {
      const reference = loadSafetensors(path.join(REFERENCE, 'unet.safetensors'));
      for (const name of ['unet.bin', 'unet.pt', 'unet']) {
        const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 }).loadStateDict(copy(path.join(REFERENCE, 'unet.safetensors'), name));
        const w = unet.stateDict()['init_conv.weight'];
        assert.strictEqual(w.sub(reference['init_conv.weight']).abs().max().item(), 0, name);
        unet.dispose();
      }
      torch.dispose(Object.values(reference));
    });

    it('torch.save files named .safetensors load, zip and legacy', () => {
      for (const file of ['linear.pt', 'linear_legacy.pt']) {
        const m = linear().loadStateDict(copy(fixture(file), `${file}.safetensors`));
        assert.deepStrictEqual(valuesOf(m.stateDict()['linear_t.bias']), EXPECTED['linear.pt']['linear_t.bias'].values);
      }
    });

    it('jit.load says what a safetensors or torch.save file is, whatever its name', () => {
      const st = copy(path.join(REFERENCE, 'unet.safetensors'), 'weights.pt');
      assert.throws(() => jit.load(st), {
        message: `jit.load: ${st} is not a TorchScript checkpoint: it is a safetensors file (weights, no program): load it into a model with module.loadStateDict(path)`,
      });
      const legacy = fixture('linear_legacy.pt');
      assert.throws(() => jit.load(legacy), {
        message: `jit.load: ${legacy} is not a TorchScript checkpoint: it is a pickle (torch.save's old format): load its weights into a model with module.loadStateDict(path)`,
      });
    });
  });

  describe('files that never end, or are not files', () => {
    const link = (): string => {
      const p = path.join(tmp, 'zero.safetensors');
      if (!fs.existsSync(p)) fs.symlinkSync('/dev/zero', p);
      return p;
    };

    it('/dev/zero and a .safetensors symlink to it are refused at once by every reader', () => {
      const started = Date.now();
      const p = link();
      assert.throws(() => loadSafetensors('/dev/zero'), { message: 'safetensors: /dev/zero is not a regular file (a character device)' });
      assert.throws(() => loadSafetensors(p), { message: `safetensors: ${p} is not a regular file (a character device, /dev/zero)` });
      assert.throws(() => linear().loadStateDict(p), { message: `loadStateDict: ${p} is not a regular file (a character device, /dev/zero)` });
      assert.throws(() => readStateDict('/dev/zero'), { message: 'readStateDict: /dev/zero is not a regular file (a character device)' });
      assert.throws(() => jit.load(p), { message: `jit.load: ${p} is not a regular file (a character device, /dev/zero)` });
      assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    });

    it('a FIFO is refused without opening it (an open would wait for a writer)', () => {
      const fifo = path.join(tmp, 'fifo.pt');
      execFileSync('mkfifo', [fifo]);
      assert.throws(() => linear().loadStateDict(fifo), { message: `loadStateDict: ${fifo} is not a regular file (a FIFO)` });
      assert.throws(() => jit.load(fifo), { message: `jit.load: ${fifo} is not a regular file (a FIFO)` });
    });

    it('jit.load of /proc/self/status says what it is (not "is empty")', () => {
      assert.throws(() => jit.load('/proc/self/status'), {
        message: 'jit.load: /proc/self/status is not a regular file on disk (it reports a size of 0 but has content, as /proc and /sys files do)',
      });
      const empty = path.join(tmp, 'empty.pt');
      fs.writeFileSync(empty, '');
      assert.throws(() => jit.load(empty), { message: `jit.load: ${empty} is empty` });
    });
  });

  describe('damaged torch.save files are errors naming the damage', () => {
    it('truncated zip and legacy files', () => {
      const whole = fs.readFileSync(fixture('linear.pt'));
      const cut = path.join(tmp, 'cut.pt');
      fs.writeFileSync(cut, whole.subarray(0, whole.length - 10));
      assert.throws(() => linear().loadStateDict(cut), {
        message: `loadStateDict: ${cut} is not a valid torch.save file: it is not a complete zip archive (truncated or not a zip file)`,
      });
      const legacy = fs.readFileSync(fixture('linear_legacy.pt'));
      const cutLegacy = path.join(tmp, 'cut_legacy.pt');
      fs.writeFileSync(cutLegacy, legacy.subarray(0, legacy.length - 4));
      assert.throws(() => linear().loadStateDict(cutLegacy), /^Error: loadStateDict: .*cut_legacy\.pt is not a valid torch\.save file: it ends inside storage \d+ \(truncated\?\)$/);
      fs.writeFileSync(cutLegacy, legacy.subarray(0, 300));
      assert.throws(() => linear().loadStateDict(cutLegacy), /is not a valid torch\.save file: its pickle ends inside an opcode|its pickle ends without a STOP/);
    });

    it('a Python pickle that is not torch.save, and bytes that are no checkpoint', () => {
      const p = path.join(tmp, 'plain.pkl');
      fs.writeFileSync(p, Buffer.from([0x80, 0x04, 0x4b, 0x01, 0x2e]));
      assert.throws(() => readStateDict(p), {
        message: `readStateDict: ${p} is not a valid torch.save file: it is a Python pickle without torch.save's magic number, not a torch.save file`,
      });
      const q = path.join(tmp, 'text.pt');
      fs.writeFileSync(q, 'hello, world\n');
      assert.throws(() => readStateDict(q), {
        message: `readStateDict: ${q} is not a checkpoint this library reads (safetensors, torch.save, or TorchScript for jit.load): it starts with bytes 68 65 6c 6c 6f 2c 20 77`,
      });
    });
  });

  describe('a checkpoint made with other options names the first parameter that differs', () => {
    it('a shape: both shapes, in the model\'s order', () => {
      assert.throws(() => linear(4).loadStateDict(fixture('linear.pt')), {
        message: "load_named_tensors: shape of 'linear_t.weight' is [3, 1] in the source but [4, 1] in the model. Other differences: 3 more shapes differ.",
      });
      assert.throws(() => linear(3, 3).loadStateDict(fixture('linear.pt')), {
        message: "load_named_tensors: shape of 'linear_img.weight' is [3, 4] in the source but [3, 9] in the model",
      });
    });

    it('names: missing ones in the model\'s order, unexpected ones in the file\'s, with their shapes', () => {
      const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 });
      const p = fixture('linear.pt');
      assert.throws(() => unet.loadStateDict(p), (err: Error) => {
        assert.match(err.message, /^load_named_tensors: names do not match the model's\. Missing: init_conv\.weight \[8, 3, 7, 7\], init_conv\.bias \[8\], /);
        assert.match(err.message, / Unexpected: linear_t\.weight \[3, 1\], linear_t\.bias \[3\], linear_img\.weight \[3, 4\], linear_img\.bias \[3\]\.$/);
        return true;
      });
      unet.loadStateDict(fixture('linear.pt'), { strict: false }); // nothing in common: nothing copied, no error
    });
  });

  it('a short fuzz run of the reader (300 mutated torch.save files): no crash, no hang', function () {
    // The full run (docs/FUZZ.md) is 5,000+ cases; this one takes about 15 s.
    this.timeout(180000);
    const script = path.resolve(__dirname, '..', '..', 'scripts', 'fuzz-checkpoints.js');
    const run = spawnSync(process.execPath, [script, '--cases', '300', '--seed', '7', '--batch', '150', '--kinds', 'torchsave,legacy', '--hang-ms', '20000'], {
      encoding: 'utf8',
      env: process.env,
    });
    assert.strictEqual(run.status, 0, run.stdout + run.stderr);
    const summary = JSON.parse(run.stdout.slice(run.stdout.indexOf('{'), run.stdout.indexOf('most common errors:')));
    assert.strictEqual(summary.counts.crash, 0);
    assert.strictEqual(summary.counts.hang, 0);
    assert.strictEqual(summary.counts.ok + summary.counts.error, 300);
    assert.ok(summary.counts.error > 100, `only ${summary.counts.error} mutants were refused`);
  });

  it('memory: reading, loading and refusing leave no tensors behind', () => {
    const m = linear();
    const run = (): void => {
      torch.dispose(Object.values(readStateDict(fixture('dtypes.pt'))));
      torch.dispose(Object.values(readStateDict(fixture('views_legacy.pt'))));
      m.loadStateDict(fixture('trainer.pt'), { key: 'ema' });
      assert.throws(() => m.loadStateDict(fixture('evil_os_system.pt')));
      assert.throws(() => linear(4).loadStateDict(fixture('linear.pt')));
    };
    run();
    (global as { gc?: () => void }).gc?.();
    const before = torch.memory();
    for (let i = 0; i < 50; i++) run();
    (global as { gc?: () => void }).gc?.();
    const after = torch.memory();
    assert.strictEqual(after.tensors, before.tensors);
    assert.strictEqual(after.bytes, before.bytes);
  });
});
