// Bad checkpoints: each is a clear JS error naming the file and what is wrong with it, and the
// process carries on. Fixtures: scripts/fixtures/reliability_modules.py; the rest is made here.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { GaussianDiffusion, jit, loadSafetensors, Module, saveSafetensors, torch, Unet } from '../lib';
import { FIXTURES, REFERENCE } from './helpers';

const REL = path.join(FIXTURES, 'reliability');
const TOY = path.join(FIXTURES, 'diffusion', 'toy_model.pt');
const PAYLOAD_MARKER = '/tmp/guided-diffusion-pickle-payload-ran';

function tinyUnet(): Unet {
  return new Unet({ dim: 8, dimMults: [1, 2], channels: 3 });
}

// A deterministic byte stream (xorshift32), so "random bytes" is the same file every run.
function pseudoRandomBytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

function safetensorsBytes(header: object, data: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

describe('reliability: checkpoints', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-rel-ckpt-'));
  const file = (name: string, bytes: Buffer | string): string => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, bytes);
    return p;
  };
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  describe('jit.load', () => {
    it('a missing file', () => {
      const p = path.join(tmp, 'nope.pt');
      assert.throws(() => jit.load(p), { name: 'Error', message: `jit.load: no such file: ${p}` });
    });

    it('a directory', () => {
      assert.throws(() => jit.load(tmp), { message: `jit.load: ${tmp} is a directory, not a checkpoint file` });
    });

    it('an empty file', () => {
      const p = file('empty.pt', '');
      assert.throws(() => jit.load(p), { message: `jit.load: ${p} is empty` });
    });

    it('a truncated TorchScript zip', () => {
      const whole = fs.readFileSync(TOY);
      for (const keep of [whole.length - 1, whole.length - 30, Math.floor(whole.length / 2), 100, 4]) {
        const p = file(`truncated-${keep}.pt`, whole.subarray(0, keep));
        assert.throws(() => jit.load(p), {
          message: `jit.load: ${p} is not a TorchScript checkpoint: it is not a complete zip archive (truncated or not a zip file)`,
        }, `kept ${keep} bytes`);
      }
    });

    it('random bytes', () => {
      const p = file('random.pt', pseudoRandomBytes(4096, 7));
      assert.throws(() => jit.load(p), {
        message: `jit.load: ${p} is not a TorchScript checkpoint: it is not a complete zip archive (truncated or not a zip file)`,
      });
    });

    it('a text file', () => {
      const p = file('text.pt', 'import torch\nprint("hello")\n');
      assert.throws(() => jit.load(p), /is not a TorchScript checkpoint: it is not a complete zip archive/);
    });

    it('a valid zip that is not TorchScript', () => {
      const p = path.join(REL, 'not_torchscript.zip');
      assert.throws(() => jit.load(p), {
        message: `jit.load: ${p} is not a TorchScript checkpoint: the zip archive has no data.pkl and code/ of a scripted or traced module`,
      });
    });

    it('a torch.save() state_dict (a zip, but not TorchScript) says how to load weights', () => {
      const p = path.join(REL, 'state_dict_torch_save.pt');
      assert.throws(() => jit.load(p), {
        message:
          `jit.load: ${p} is not a TorchScript checkpoint: it is a torch.save() file (no code/ in the archive): ` +
          'load its weights into a model with module.loadStateDict(path), or save the module with torch.jit.script(model).save(path)',
      });
    });

    it('a pickle that names a Python function is refused without running it', () => {
      fs.rmSync(PAYLOAD_MARKER, { force: true });
      const p = path.join(REL, 'pickle_payload.pt');
      assert.throws(() => jit.load(p), (err: Error) => {
        assert.strictEqual(err.message, `jit.load: ${p} is not a readable TorchScript checkpoint (Unknown type name 'posix.system':)`);
        return true;
      });
      assert.strictEqual(fs.existsSync(PAYLOAD_MARKER), false);
    });

    it('a pickle that would make LibTorch allocate gigabytes (a memo index of 2^29) is refused first', () => {
      const p = path.join(REL, 'pickle_memo_bomb.pt');
      const started = Date.now();
      assert.throws(() => jit.load(p), {
        message: `jit.load: ${p} is not a TorchScript checkpoint: its pickle data.pkl has a memo index 536870912 beyond its 84 bytes`,
      });
      assert.ok(Date.now() - started < 2000);
    });

    it('loading runs the checkpoint\'s TorchScript __setstate__ (why only trusted checkpoints may be loaded)', () => {
      const marker = '/tmp/guided-diffusion-setstate-ran';
      fs.rmSync(marker, { force: true });
      try {
        const m = jit.load(path.join(REL, 'setstate_writes_file.pt'));
        assert.strictEqual(fs.existsSync(marker), true, 'torch.from_file in __setstate__ created a file at load time');
        m.dispose();
      } finally {
        fs.rmSync(marker, { force: true });
      }
    });

    it('a wrong argument type is a TypeError', () => {
      assert.throws(() => jit.load(42 as never), { name: 'TypeError', message: 'Expected string for path but received number' });
      assert.throws(() => jit.load(TOY, { device: 'gpu' as never }), { name: 'TypeError', message: "Unknown device 'gpu'; expected 'cpu', 'cuda' or 'cuda:N'" });
    });

    it('the process carries on: a good checkpoint still loads and runs', () => {
      const m = jit.load(TOY);
      const out = m.forward(torch.zeros([1, 3, 8, 8]), torch.tensor([0]));
      assert.deepStrictEqual(out.shape, [1, 3, 8, 8]);
    });
  });

  describe('TorchScript modules with the wrong forward', () => {
    const x = (): ReturnType<typeof torch.zeros> => torch.zeros([1, 3, 8, 8]);
    const t = (): ReturnType<typeof torch.zeros> => torch.tensor([0]);
    const opts = { imageSize: 8, channels: 3, timesteps: 10 };

    it('forward(x) without t', () => {
      const m = jit.load(path.join(REL, 'forward_one_arg.pt'));
      assert.throws(() => m.forward(x(), t()), {
        message: "Expected at most 2 argument(s) for operator 'forward', but received 3 argument(s). Declaration: forward(__torch__.OneArg self, Tensor x) -> Tensor",
      });
      assert.throws(() => new GaussianDiffusion(m, opts), { message: "the diffusion model's forward must take (x, t) or (x, t, x_self_cond); it takes 1 argument" });
    });

    it('forward(x, t, y) that needs a label', async () => {
      const m = jit.load(path.join(REL, 'forward_three_args.pt'));
      assert.throws(() => m.forward(x(), t()), { message: "forward() is missing value for argument 'y'. Declaration: forward(__torch__.ThreeArgs self, Tensor x, Tensor t, Tensor y) -> Tensor" });
      // A third argument named y is class labels (openai's forward(x, timesteps, y)): the probe
      // passes class 0, and sample() asks for the labels rather than feeding x-shaped zeros.
      const d = new GaussianDiffusion(m, opts);
      await assert.rejects(d.sample({ batchSize: 1 }), { message: 'this model is class-conditional (its forward takes y): pass modelKwargs: { y }' });
      const out = await d.sample({ batchSize: 1, modelKwargs: { y: torch.tensor([0]) } });
      assert.deepStrictEqual(out.shape, [1, 3, 8, 8]);
    });

    it('forward(x, t) returning a tuple', () => {
      const m = jit.load(path.join(REL, 'forward_tuple.pt'));
      const out = m.forward(x(), t()) as unknown as unknown[];
      assert.ok(Array.isArray(out) && out.length === 2);
      assert.throws(() => new GaussianDiffusion(m, opts), {
        message: "GaussianDiffusion: the model's forward(x, t) failed on x of shape [1, 3, 8, 8] (float32) and t of shape [1] (int64): the diffusion model returned Tuple; expected a tensor",
      });
    });

    it('forward(x, t) returning an int', () => {
      const m = jit.load(path.join(REL, 'forward_int.pt'));
      assert.strictEqual(m.forward(x(), t()), 1);
      assert.throws(() => new GaussianDiffusion(m, opts), {
        message: "GaussianDiffusion: the model's forward(x, t) failed on x of shape [1, 3, 8, 8] (float32) and t of shape [1] (int64): the diffusion model returned Int; expected a tensor",
      });
    });

    it('forward(x, t) that raises', () => {
      const m = jit.load(path.join(REL, 'forward_raises.pt'));
      assert.throws(() => m.forward(x(), t()), { message: 'reliability fixture: forward failed' });
      assert.throws(() => new GaussianDiffusion(m, opts), {
        message: "GaussianDiffusion: the model's forward(x, t) failed on x of shape [1, 3, 8, 8] (float32) and t of shape [1] (int64): reliability fixture: forward failed",
      });
    });

    it('forward(x, t) returning the wrong shape', () => {
      const m = jit.load(path.join(REL, 'forward_wrong_shape.pt'));
      assert.throws(() => new GaussianDiffusion(m, opts), {
        message: "GaussianDiffusion: the model's forward(x, t) failed on x of shape [1, 3, 8, 8] (float32) and t of shape [1] (int64): the diffusion model returned a tensor of shape [1, 1, 8, 8]; expected [1, 3, 8, 8] (the shape of its input)",
      });
    });

    it('wrong argument types to forward are errors', () => {
      const m = jit.load(TOY);
      assert.throws(() => m.forward('x' as never, t()), /Expected a value of type 'Tensor' for argument 'x' but instead found type 'str'/);
      assert.throws(() => m.forward({} as never, t()), { name: 'TypeError', message: 'Cannot pass an object as argument to a TorchScript method' });
      assert.throws(() => m.forward(x(), t(), t()), /Expected at most 3 argument\(s\) for operator 'forward', but received 4 argument\(s\)/);
      assert.throws(() => m.callMethod('nope'), { message: "Module has no method 'nope'" });
    });
  });

  describe('Module.loadStateDict', () => {
    const st = (name: string, header: object, data: Buffer): string => file(name, safetensorsBytes(header, data));

    it('a missing file', () => {
      const p = path.join(tmp, 'missing.safetensors');
      assert.throws(() => tinyUnet().loadStateDict(p), { message: `loadStateDict: no such file: ${p}` });
      assert.throws(() => loadSafetensors(p), { message: `safetensors: no such file: ${p}` });
    });

    it('a directory', () => {
      const dir = path.join(tmp, 'dir.safetensors');
      fs.mkdirSync(dir, { recursive: true });
      assert.throws(() => tinyUnet().loadStateDict(dir), { message: `loadStateDict: ${dir} is a directory, not a checkpoint file` });
      assert.throws(() => loadSafetensors(dir), { message: `safetensors: ${dir} is a directory, not a checkpoint file` });
    });

    it('an empty file', () => {
      const p = file('empty.safetensors', '');
      assert.throws(() => tinyUnet().loadStateDict(p), { message: `loadStateDict: ${p} is empty` });
      assert.throws(() => loadSafetensors(p), { message: `safetensors: ${p} is empty` });
      const short = file('short.safetensors', Buffer.from([1, 2, 3]));
      assert.throws(() => loadSafetensors(short), {
        message: `safetensors: ${short} is not a valid safetensors file: it has 3 bytes, fewer than the 8-byte header length`,
      });
    });

    it('a TorchScript archive says it is a program and to use jit.load', () => {
      assert.throws(() => tinyUnet().loadStateDict(TOY), {
        message:
          `loadStateDict: ${TOY} is a TorchScript module (a program), not a torch.save state dict: load it with jit.load(path), ` +
          'which runs its code (only for files you trust), or save its weights with torch.save(model.state_dict(), path)',
      });
    });

    it('a bad header length', () => {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(2n ** 63n);
      const p = file('huge-header.safetensors', Buffer.concat([len, Buffer.from('{}')]));
      assert.throws(() => tinyUnet().loadStateDict(p), {
        message: `safetensors: ${p} is not a valid safetensors file: the header length 9223372036854775808 exceeds the file size 10`,
      });
    });

    it('a header that is not JSON, or not an object', () => {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(4n);
      const p = file('not-json.safetensors', Buffer.concat([len, Buffer.from('{{{{')]));
      assert.throws(() => loadSafetensors(p), /is not a valid safetensors file: the header is not JSON/);
      const q = st('array.safetensors', [1, 2] as unknown as object, Buffer.alloc(0));
      assert.throws(() => loadSafetensors(q), { message: `safetensors: ${q} is not a valid safetensors file: the header is not a JSON object` });
    });

    it('random bytes', () => {
      const p = file('random.safetensors', pseudoRandomBytes(4096, 11));
      // Not safetensors by content (byte 8 is not the JSON header's '{'), whatever the name says.
      assert.throws(() => tinyUnet().loadStateDict(p), {
        message: `loadStateDict: ${p} is not a checkpoint this library reads (safetensors, torch.save, or TorchScript for jit.load): it starts with bytes 6b 0b 6e 33 47 ff bf d3`,
      });
      assert.throws(() => loadSafetensors(p), /is not a valid safetensors file: the header length \d+ exceeds the file size 4096/);
    });

    it('a truncated file', () => {
      const whole = fs.readFileSync(path.join(REFERENCE, 'unet.safetensors'));
      const p = file('truncated.safetensors', whole.subarray(0, whole.length - 100));
      assert.throws(() => tinyUnet().loadStateDict(p), /is not a valid safetensors file: tensor '.+' extends past the end of the file \(truncated\?\)/);
    });

    it('an unsupported dtype', () => {
      const p = st('f8.safetensors', { w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, Buffer.alloc(2));
      assert.throws(() => tinyUnet().loadStateDict(p), { message: `safetensors: ${p} is not a valid safetensors file: tensor 'w' has unsupported dtype "F8_E4M3"` });
    });

    it('data_offsets that do not fit the shape, bad shapes', () => {
      const p = st('offsets.safetensors', { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 8] } }, Buffer.alloc(8));
      assert.throws(() => loadSafetensors(p), {
        message: `safetensors: ${p} is not a valid safetensors file: tensor 'w' of shape [2, 2] F32 needs 16 bytes but its data_offsets span 8`,
      });
      const q = st('shape.safetensors', { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, Buffer.alloc(4));
      assert.throws(() => loadSafetensors(q), { message: `safetensors: ${q} is not a valid safetensors file: tensor 'w' has an invalid shape [-1]` });
      const r = st('huge.safetensors', { w: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } }, Buffer.alloc(4));
      assert.throws(() => loadSafetensors(r), /tensor 'w' of shape \[1099511627776, 1099511627776\] F32 needs .* bytes but its data_offsets span 4/);
    });

    it('a float64 file loads into float32 parameters, converted (as PyTorch does)', () => {
      const unet = tinyUnet();
      const sd = unet.stateDict();
      const f64: Record<string, ReturnType<typeof torch.zeros>> = {};
      for (const [k, v] of Object.entries(sd)) f64[k] = torch.onesLike(v, { dtype: 'float64' });
      const p = path.join(tmp, 'f64.safetensors');
      saveSafetensors(f64, p);
      unet.loadStateDict(p);
      const first = Object.values(unet.stateDict())[0];
      assert.strictEqual(first.dtype, 'float32');
      assert.strictEqual(first.sum().item(), first.numel);
    });

    it('a missing key and an extra key (strict)', () => {
      const unet = tinyUnet();
      const sd = unet.stateDict();
      const names = Object.keys(sd).sort();
      const missing = { ...sd };
      delete missing[names[0]];
      const shape0 = `[${sd[names[0]].shape.join(', ')}]`;
      assert.throws(() => unet.loadStateDict(missing), { message: `load_named_tensors: names do not match the model's. Missing: ${names[0]} ${shape0}.` });
      assert.throws(() => unet.loadStateDict({ ...sd, 'extra.weight': torch.zeros([1]) }), {
        message: "load_named_tensors: names do not match the model's. Unexpected: extra.weight [1].",
      });
      // Not strict: both are fine.
      unet.loadStateDict(missing, { strict: false });
      unet.loadStateDict({ ...sd, 'extra.weight': torch.zeros([1]) }, { strict: false });
      const p = path.join(tmp, 'missing.safetensors');
      saveSafetensors(missing, p);
      assert.throws(() => unet.loadStateDict(p), { message: `load_named_tensors: names do not match the model's. Missing: ${names[0]} ${shape0}.` });
    });

    it('a shape mismatch (strict or not)', () => {
      const unet = tinyUnet();
      const sd = unet.stateDict();
      const name = 'init_conv.weight';
      assert.deepStrictEqual(sd[name].shape, [8, 3, 7, 7]);
      const bad = { ...sd, [name]: torch.zeros([8, 3, 3, 3]) };
      const message = `load_named_tensors: shape of '${name}' is [8, 3, 3, 3] in the source but [8, 3, 7, 7] in the model`;
      assert.throws(() => unet.loadStateDict(bad), { message });
      assert.throws(() => unet.loadStateDict(bad, { strict: false }), { message });
      // A wider Unet's weights into a narrow one.
      const wide = new Unet({ dim: 16, dimMults: [1, 2], channels: 3 });
      assert.throws(() => unet.loadStateDict(wide.stateDict()), /load_named_tensors: shape of '.+' is \[16, .+\] in the source but \[8, .+\] in the model/);
    });

    it('a failed load leaves the weights as they were', () => {
      const unet = tinyUnet();
      const before = unet.stateDict()['init_conv.weight'].clone();
      const sd = unet.stateDict();
      const bad = { ...sd, 'init_conv.weight': torch.ones([8, 3, 7, 7]), 'final_conv.weight': torch.zeros([1]) };
      assert.throws(() => unet.loadStateDict(bad));
      assert.ok(unet.stateDict()['init_conv.weight'].eq(before).all().item());
    });

    it('wrong argument types', () => {
      const unet = tinyUnet();
      assert.throws(() => unet.loadStateDict({ w: 3 } as never), { name: 'TypeError', message: 'Expected Tensor for w but received 3' });
      assert.throws(() => unet.native.loadStateDict(null as never, true), { name: 'TypeError', message: 'Expected an object of Tensors for stateDict but received null' });
      const d = torch.zeros([1]);
      d.dispose();
      assert.throws(() => unet.loadStateDict({ 'init_conv.weight': d }, { strict: false }), { message: 'Tensor init_conv.weight was disposed and cannot be used' });
    });

    it('a disposed module says so', () => {
      const unet = tinyUnet();
      unet.dispose();
      assert.throws(() => unet.loadStateDict({}), { message: 'Module was disposed and cannot be used' });
      assert.throws(() => unet.forward(torch.zeros([1, 3, 8, 8]), torch.tensor([0])), { message: 'Module was disposed and cannot be used' });
      assert.throws(() => new GaussianDiffusion(unet, { imageSize: 8 }), { message: 'Module was disposed and cannot be used' });
      unet.dispose();
    });
  });

  describe('GaussianDiffusion construction', () => {
    it('rejects what is not a Module, and bad options', () => {
      assert.throws(() => new GaussianDiffusion({} as Module, { imageSize: 8 }), { name: 'TypeError' });
      const m = jit.load(TOY);
      assert.throws(() => new GaussianDiffusion(m, { imageSize: 0 }), { name: 'TypeError', message: 'Expected positive integer for imageSize but received 0' });
      assert.throws(() => new GaussianDiffusion(m, { imageSize: NaN }), { name: 'TypeError', message: 'Expected positive integer for imageSize but received NaN' });
      assert.throws(() => new GaussianDiffusion(m, { imageSize: 8, timesteps: 2.5 }), { name: 'TypeError', message: 'Expected positive integer for timesteps but received 2.5' });
      assert.throws(() => new GaussianDiffusion(m, { imageSize: 8, ddimSamplingEta: NaN }), {
        name: 'TypeError',
        message: 'Expected a number for ddimSamplingEta but received NaN',
      });
      assert.throws(() => new GaussianDiffusion(m, { imageSize: 8, timesteps: 10, betaSchedule: 'cosine', scheduleFnKwargs: { s: -1 } }), {
        message: 'cosine schedule offset s must be a positive number; got -1',
      });
      assert.throws(() => new GaussianDiffusion(m, { imageSize: 8, timesteps: 10, objective: 'pred_eps' as never }), {
        message: "objective must be one of pred_noise, pred_x0, pred_v; got 'pred_eps'",
      });
    });

    it('ddimSamplingEta outside [0, 1] is a RangeError (above 1 the DDIM step gave all-NaN images)', () => {
      const m = jit.load(TOY);
      for (const eta of [1.01, 2, -0.5, Infinity]) {
        assert.throws(() => new GaussianDiffusion(m, { imageSize: 8, timesteps: 10, samplingTimesteps: 5, ddimSamplingEta: eta }), {
          name: 'RangeError',
          message: `ddimSamplingEta must be in [0, 1] (0: deterministic DDIM, 1: as noisy as ancestral steps); got ${eta}`,
        });
      }
      assert.throws(() => GaussianDiffusion.pretrained('fashion-mnist', { samplingTimesteps: 10, ddimSamplingEta: 2 }), {
        name: 'RangeError',
        message: 'ddimSamplingEta must be in [0, 1] (0: deterministic DDIM, 1: as noisy as ancestral steps); got 2',
      });
    });

    it('eta 1, the largest allowed, samples finite images', async () => {
      const d = new GaussianDiffusion(jit.load(TOY), { imageSize: 8, timesteps: 10, samplingTimesteps: 5, ddimSamplingEta: 1 });
      const x = await d.sample({ batchSize: 2, seed: 3 });
      assert.strictEqual(x.isfinite().all().item(), true);
      x.dispose();
    });

    it('timesteps above 100,000 is a RangeError, at once (1e8 took > 60 s and 7 GB)', () => {
      const m = jit.load(TOY);
      const started = Date.now();
      assert.throws(() => new GaussianDiffusion(m, { imageSize: 8, timesteps: 1e8 }), { name: 'RangeError', message: 'timesteps must be at most 100000; got 100000000' });
      assert.throws(() => new GaussianDiffusion(m, { imageSize: 8, timesteps: 100_001 }), { name: 'RangeError', message: 'timesteps must be at most 100000; got 100001' });
      assert.ok(Date.now() - started < 1000);
    });

    it('a model for another image size or channel count is rejected by the probe', () => {
      const unet = tinyUnet();
      assert.throws(() => new GaussianDiffusion(unet, { imageSize: 8, channels: 1, timesteps: 10 }), /GaussianDiffusion: the model's forward\(x, t\) failed on x of shape \[1, 1, 8, 8\]/);
    });
  });
});
