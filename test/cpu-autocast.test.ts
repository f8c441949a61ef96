// autocast: 'bfloat16' on the CPU: the model's forward under CPU autocast (oneDNN's bf16
// kernels), the guidance gradient and the sampling math in float32.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, Tensor, torch, Unet } from '../lib';
import { f32Tol, FIXTURES, maxAbsDiff, readF32, REFERENCE, referenceCase } from './helpers';

const rc = referenceCase();
// lucidrains' own Unet and GaussianDiffusion (denoising_diffusion_pytorch/guided_diffusion.py at
// the commit in reference.json) with the Unet's forward under torch.autocast('cpu', bfloat16)
// and the guidance in float32, on the reference case's weights (scripts/fixtures/cpu_autocast.py).
const AUTOCAST = path.join(FIXTURES, 'cpu-autocast');
const pythonBf16 = readF32(path.join(AUTOCAST, 'ddpm_guided_bf16.f32'));
const made = JSON.parse(fs.readFileSync(path.join(AUTOCAST, 'reference.json'), 'utf8'));
const float32 = readF32(path.join(REFERENCE, 'ddpm_guided.f32'));
const SCRIPT = path.resolve(__dirname, '..', '..', 'scripts', 'fixtures', 'cpu_autocast.py');

const meanAbsDiff = (a: Float32Array, b: Float32Array): number => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;
const fmt = (a: Float32Array, b: Float32Array): string => `max ${maxAbsDiff(a, b).toExponential(3)}, mean ${meanAbsDiff(a, b).toExponential(3)}`;

function referenceDiffusion(autocast: 'bfloat16' | 'float32' = 'bfloat16'): GaussianDiffusion {
  const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 }).loadStateDict(path.join(REFERENCE, 'unet.safetensors')).eval();
  return new GaussianDiffusion(unet, { imageSize: 16, timesteps: 20, betaSchedule: 'sigmoid', ...(autocast === 'bfloat16' ? { autocast } : {}) });
}

function kwargs(): { classifier: ReturnType<typeof jit.load>; y: Tensor; classifierScale: number } {
  return { classifier: jit.load(path.join(REFERENCE, 'classifier.pt')), y: torch.tensor(rc.y), classifierScale: rc.classifier_scale };
}

async function guidedSample(diffusion: GaussianDiffusion, condFn: typeof classifierGuidance | typeof classifierCondFn): Promise<Float32Array> {
  const img = await diffusion.sample({ batchSize: 2, condFn, guidanceKwargs: kwargs(), seed: 42 });
  assert.strictEqual(img.dtype, 'float32');
  assert.deepStrictEqual(img.shape, [2, 3, 16, 16]);
  const out = img.toFloat32Array();
  img.dispose();
  return out;
}

describe("autocast: 'bfloat16' on the CPU", () => {
  // Bounds against lucidrains' module: about 10x our measured error (max 2.94e-2, mean 8.56e-4).
  // They do NOT exclude a float32 sample: ours is max 1.004e-1, mean 1.33e-3 from their
  // bfloat16 one, inside them. The two bfloat16 runs round at other places: TorchScript's
  // autocast pass runs gelu, sum, addcmul and add/mul/div by a scalar in float32 where eager
  // autocast keeps bfloat16, and our RMSNorm, Block and LinearAttention fold their factors.
  // Each alone moves the sample about as far as float32 does (measured on their module:
  // traced, so under the pass, max 1.2e-2 mean 7.9e-4; in eager with our RMSNorm 5.4e-2 /
  // 9.4e-4, Block 4.7e-2 / 8.3e-4, LinearAttention 7.6e-2 / 9.1e-4), so only a bit-for-bit copy of
  // their eager ops could be held 10x nearer than float32. The check that fails on float32 is
  // the next test's, against our own graph under PyTorch's torch.autocast.
  const VS_LUCIDRAINS = { max: 0.3, mean: 9e-3 };
  let ourFloat32: Float32Array;
  before(async () => {
    ourFloat32 = await guidedSample(referenceDiffusion('float32'), classifierGuidance);
    assert.ok(maxAbsDiff(ourFloat32, float32) < 1e-5, `our float32 sample is ${maxAbsDiff(ourFloat32, float32)} from ddpm_guided.f32`);
  });

  for (const [name, condFn] of [
    ['native classifierGuidance', classifierGuidance],
    ['JS classifierCondFn', classifierCondFn],
  ] as const) {
    it(`a guided DDPM sample with ${name} is float32, off float32 by bfloat16's rounding, within bfloat16's reach of lucidrains' module under PyTorch's CPU autocast`, async () => {
      const diffusion = referenceDiffusion();
      assert.strictEqual(diffusion.options.autocast, 'bfloat16');
      const out = await guidedSample(diffusion, condFn);
      // Not float32's sample (the forward ran in bfloat16: 8 mantissa bits)...
      const vsF32 = maxAbsDiff(out, float32);
      assert.ok(vsF32 > 1e-3, `max |bf16 - f32| = ${vsF32}: autocast did not take effect`);
      // ...but within bfloat16's reach of it: measured max 7.1e-2, mean 1.18e-3 over 20 guided
      // steps. lucidrains' own bfloat16 sample is 1.0e-1 (mean 1.33e-3) off float32.
      assert.ok(vsF32 < 0.15, `max |bf16 - f32| = ${vsF32}`);
      assert.ok(meanAbsDiff(out, float32) < 3e-3, `mean |bf16 - f32| = ${meanAbsDiff(out, float32)}`);
      const ref = `lucidrains@${made.reference.commit.slice(0, 12)} under torch ${made.torch} autocast`;
      console.log(`      ours bfloat16 vs ${ref}: ${fmt(out, pythonBf16)}; ours float32 vs it: ${fmt(ourFloat32, pythonBf16)}`);
      assert.ok(maxAbsDiff(out, pythonBf16) < VS_LUCIDRAINS.max, `max |ours - lucidrains bf16| = ${maxAbsDiff(out, pythonBf16)}`);
      assert.ok(meanAbsDiff(out, pythonBf16) < VS_LUCIDRAINS.mean, `mean |ours - lucidrains bf16| = ${meanAbsDiff(out, pythonBf16)}`);
    });
  }

  it("the Unet's forward is what PyTorch's own torch.autocast gives on the same graph, and a float32 forward is not", function () {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-autocast-'));
    try {
      const diffusion = referenceDiffusion();
      diffusion.model.save(path.join(tmp, 'unet.pt'));
      const outPath = path.join(tmp, 'out.f32');
      const r = spawnSync('python3', [SCRIPT, '--graph', path.join(tmp, 'unet.pt'), outPath], { encoding: 'utf8' });
      assert.strictEqual(r.status, 0, r.stderr);
      const python = readF32(outPath);
      const x = torch.tensor(readF32(path.join(REFERENCE, 'forward_x.f32')), { shape: [2, 3, 16, 16] });
      const t = torch.tensor(rc.forward_t);
      const p = diffusion.predict(x, t);
      const ours = p.eps.toFloat32Array();
      const f32 = referenceDiffusion('float32').predict(x, t);
      const ourFloat32Eps = f32.eps.toFloat32Array();
      torch.dispose([x, t, p.eps, p.x0, p.mean, p.variance, p.logVariance, f32.eps, f32.x0, f32.mean, f32.variance, f32.logVariance]);
      // Measured 0 (the same kernels: the addon links Python's torch here); 10 float32 ulps.
      const bound = f32Tol(python);
      console.log(`      ours bfloat16 vs the same graph under torch.autocast: ${fmt(ours, python)}; ours float32 vs it: ${fmt(ourFloat32Eps, python)} (bound ${bound.toExponential(2)})`);
      assert.ok(maxAbsDiff(ours, python) <= bound, `max |ours - PyTorch autocast| = ${maxAbsDiff(ours, python)} > ${bound}`);
      // The bound catches a float32 forward (measured max 1.8e-2 off).
      assert.ok(maxAbsDiff(ourFloat32Eps, python) > 100 * bound, `float32 is only ${maxAbsDiff(ourFloat32Eps, python)} off PyTorch's bfloat16`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('the guidance runs in float32: a JS condFn gets float32 x outside autocast, and its float32 gradient is used as given', async () => {
    const seen: string[] = [];
    const zeros = (x: Tensor): Tensor => {
      seen.push(x.dtype);
      return torch.zerosLike(x);
    };
    const diffusion = referenceDiffusion();
    const guided = await diffusion.sample({ batchSize: 2, condFn: zeros, seed: 42 });
    const plain = await diffusion.sample({ batchSize: 2, seed: 42 });
    assert.deepStrictEqual([...new Set(seen)], ['float32']);
    assert.strictEqual(seen.length, 20);
    // A zero gradient changes nothing: the bfloat16 forward is deterministic and the step math is float32.
    assert.strictEqual(maxAbsDiff(guided.toFloat32Array(), plain.toFloat32Array()), 0);
    torch.dispose([guided, plain]);
  });

  it("option validation: float16 needs CUDA, other dtypes are named", () => {
    const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 });
    assert.throws(() => new GaussianDiffusion(unet, { imageSize: 16, timesteps: 10, autocast: 'float16' }), {
      name: 'RangeError',
      message: "autocast 'float16' needs a CUDA device (the CPU takes 'bfloat16'); this diffusion samples on cpu",
    });
    assert.throws(() => new GaussianDiffusion(unet, { imageSize: 16, timesteps: 10, autocast: 'bf16' as never }), {
      name: 'RangeError',
      message: "autocast must be 'float16' or 'bfloat16'; got 'bf16'",
    });
  });
});
