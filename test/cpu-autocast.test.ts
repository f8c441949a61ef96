// autocast: 'bfloat16' on the CPU: the model's forward under CPU autocast (oneDNN's bf16
// kernels), the guidance gradient and the sampling math in float32.
import * as assert from 'assert';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, Tensor, torch, Unet } from '../lib';
import { FIXTURES, maxAbsDiff, readF32, REFERENCE, referenceCase } from './helpers';

const rc = referenceCase();
// PyTorch's own sample of the reference case with its Unet under torch.autocast('cpu', bfloat16)
// (scripts/fixtures/cpu_autocast.py), and the float32 one.
const pythonBf16 = readF32(path.join(FIXTURES, 'cpu-autocast', 'ddpm_guided_bf16.f32'));
const float32 = readF32(path.join(REFERENCE, 'ddpm_guided.f32'));

const meanAbsDiff = (a: Float32Array, b: Float32Array): number => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;

function referenceDiffusion(): GaussianDiffusion {
  const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 }).loadStateDict(path.join(REFERENCE, 'unet.safetensors')).eval();
  return new GaussianDiffusion(unet, { imageSize: 16, timesteps: 20, betaSchedule: 'sigmoid', autocast: 'bfloat16' });
}

function kwargs(): { classifier: ReturnType<typeof jit.load>; y: Tensor; classifierScale: number } {
  return { classifier: jit.load(path.join(REFERENCE, 'classifier.pt')), y: torch.tensor(rc.y), classifierScale: rc.classifier_scale };
}

describe("autocast: 'bfloat16' on the CPU", () => {
  for (const [name, condFn] of [
    ['native classifierGuidance', classifierGuidance],
    ['JS classifierCondFn', classifierCondFn],
  ] as const) {
    it(`a guided DDPM sample with ${name} is float32, off float32 by bfloat16's rounding, as PyTorch's own CPU autocast is`, async () => {
      const diffusion = referenceDiffusion();
      assert.strictEqual(diffusion.options.autocast, 'bfloat16');
      const img = await diffusion.sample({ batchSize: 2, condFn, guidanceKwargs: kwargs(), seed: 42 });
      assert.strictEqual(img.dtype, 'float32');
      assert.deepStrictEqual(img.shape, [2, 3, 16, 16]);
      const out = img.toFloat32Array();
      img.dispose();
      // Not float32's sample (the forward ran in bfloat16: 8 mantissa bits)...
      const vsF32 = maxAbsDiff(out, float32);
      assert.ok(vsF32 > 1e-3, `max |bf16 - f32| = ${vsF32}: autocast did not take effect`);
      // ...but within bfloat16's reach of it: measured max 7.1e-2, mean 1.18e-3 over 20 guided
      // steps. PyTorch's own bfloat16 sample is 1.0e-1 (mean 1.33e-3) off float32.
      assert.ok(vsF32 < 0.15, `max |bf16 - f32| = ${vsF32}`);
      assert.ok(meanAbsDiff(out, float32) < 3e-3, `mean |bf16 - f32| = ${meanAbsDiff(out, float32)}`);
      // And as near PyTorch's bfloat16 sample as either is to float32 (measured max 2.9e-2,
      // mean 8.6e-4): the same op kinds run in bfloat16 on both sides; the order of a few
      // roundings differs (our graph vs the reference's eager ops), and 20 steps carry it.
      const vsPython = maxAbsDiff(out, pythonBf16);
      assert.ok(vsPython < 0.1, `max |ours - PyTorch bf16| = ${vsPython}`);
      assert.ok(meanAbsDiff(out, pythonBf16) < 2e-3, `mean |ours - PyTorch bf16| = ${meanAbsDiff(out, pythonBf16)}`);
    });
  }

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
