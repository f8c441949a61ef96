// The reference case on CUDA (skipped where LibTorch has no GPU): the same numbers as on the
// CPU, within float error. cuDNN may use TF32 for convolutions (LibTorch's default, as in
// PyTorch), so the bounds are looser than the CPU's 1e-5.
import * as assert from 'assert';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, torch, Unet } from '../lib';
import { maxAbsDiff, readF32, REFERENCE, referenceCase } from './helpers';

const rc = referenceCase();
const ref = (name: string): Float32Array => readF32(path.join(REFERENCE, `${name}.f32`));

describe('CUDA', function () {
  before(function () {
    if (!torch.cuda.isAvailable()) this.skip();
  });

  const input = (): ReturnType<typeof torch.tensor> => torch.tensor(ref('forward_x'), { shape: rc.tensors.forward_x, device: 'cuda' });
  const unet = (): Unet => new Unet({ dim: 8, dimMults: [1, 2], channels: 3 }).loadStateDict(path.join(REFERENCE, 'unet.safetensors')).eval().to('cuda');
  const report = (what: string, err: number): void => console.log(`      ${what}: max abs error ${err.toExponential(2)}`);

  it('the native Unet matches forward_out.f32', () => {
    const out = torch.noGrad(() => unet().forward(input(), torch.tensor(rc.forward_t, { device: 'cuda' })));
    assert.match(out.device, /^cuda/);
    const err = maxAbsDiff(out.toFloat32Array(), ref('forward_out'));
    report('native', err);
    assert.ok(err < 5e-3, String(err));
  });

  it('the traced checkpoint fails on CUDA with the device mismatch named (tracing fixed its arange on the CPU)', () => {
    const traced = jit.load(path.join(REFERENCE, 'unet_traced.pt'), { device: 'cuda' });
    assert.throws(() => traced.forward(input(), torch.tensor(rc.forward_t, { device: 'cuda' })), /cuda:0 and cpu|cpu and cuda:0/);
  });

  it('GaussianDiffusion samples where the model is when no device is given', () => {
    assert.strictEqual(new GaussianDiffusion(unet(), { imageSize: 16, timesteps: 20 }).options.device, 'cuda:0');
    assert.strictEqual(new GaussianDiffusion(unet().to('cpu'), { imageSize: 16, timesteps: 20 }).options.device, 'cpu');
  });

  it('classifierCondFn matches cond_grad.f32', () => {
    const classifier = jit.load(path.join(REFERENCE, 'classifier.pt'), { device: 'cuda' });
    const g = classifierCondFn(input(), torch.tensor(rc.forward_t, { device: 'cuda' }), {
      classifier,
      y: torch.tensor(rc.y, { device: 'cuda' }),
      classifierScale: rc.classifier_scale,
    });
    const err = maxAbsDiff(g.toFloat32Array(), ref('cond_grad'));
    report('gradient', err);
    assert.ok(err < 5e-3, String(err));
  });

  it('autocast bfloat16 samples in float32 close to the float32 sample', async () => {
    const plain = new GaussianDiffusion(unet(), { imageSize: 16, timesteps: 20 });
    const mixed = new GaussianDiffusion(unet(), { imageSize: 16, timesteps: 20, autocast: 'bfloat16' });
    const a = await plain.sample({ batchSize: 2, seed: 3 });
    const b = await mixed.sample({ batchSize: 2, seed: 3 });
    assert.strictEqual(b.dtype, 'float32');
    const err = maxAbsDiff(a.toFloat32Array(), b.toFloat32Array());
    report('bfloat16 vs float32 sample', err);
    assert.ok(err > 0 && err < 0.1, String(err));
  });

  for (const [name, condFn] of [
    ['JS classifierCondFn', classifierCondFn],
    ['native classifierGuidance', classifierGuidance],
  ] as const) {
    it(`a guided sample with ${name} matches ddpm_guided.f32 (noise drawn on the CPU from the seed)`, async () => {
      const classifier = jit.load(path.join(REFERENCE, 'classifier.pt'), { device: 'cuda' });
      const diffusion = new GaussianDiffusion(unet(), { imageSize: 16, timesteps: 20, betaSchedule: 'sigmoid' });
      const img = await diffusion.sample({
        batchSize: 2,
        seed: 42,
        condFn,
        guidanceKwargs: { classifier, y: torch.tensor(rc.y, { device: 'cuda' }), classifierScale: rc.classifier_scale },
      });
      assert.match(img.device, /^cuda/);
      const err = maxAbsDiff(img.toFloat32Array(), ref('ddpm_guided'));
      report(name, err);
      assert.ok(err < 2e-2, String(err));
    });
  }
});
