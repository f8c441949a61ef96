// The numbers of the Python reference (test/fixtures/reference-case) reproduced.
import * as assert from 'assert';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, torch, Unet } from '../lib';
import { assertClose, f32Tol, readF32, REFERENCE, referenceCase } from './helpers';

const rc = referenceCase();
const ref = (name: string): Float32Array => readF32(path.join(REFERENCE, `${name}.f32`));
const input = (): ReturnType<typeof torch.tensor> => torch.tensor(ref('forward_x'), { shape: rc.tensors.forward_x });

function referenceUnet(): Unet {
  const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 });
  unet.loadStateDict(path.join(REFERENCE, 'unet.safetensors'));
  return unet.eval();
}

describe('reference case', () => {
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => torch.setNumThreads(threads));

  it('native Unet with unet.safetensors matches forward_out.f32 within 1.3e-5 (measured 1.2e-6)', () => {
    const unet = referenceUnet();
    const out = torch.noGrad(() => unet.forward(input(), torch.tensor(rc.forward_t)));
    assert.deepStrictEqual(out.shape, rc.tensors.forward_out);
    assertClose(out.toFloat32Array(), ref('forward_out'), 1.3e-5, 'forward'); // measured 1.2e-6
  });

  it('jit.load(unet_traced.pt) matches forward_out.f32 within 10 float32 ulps (measured equal)', () => {
    const traced = jit.load(path.join(REFERENCE, 'unet_traced.pt'));
    const out = torch.noGrad(() => traced.forward(input(), torch.tensor(rc.forward_t)));
    assertClose(out.toFloat32Array(), ref('forward_out'), f32Tol(ref('forward_out')), 'traced forward'); // measured 0
  });

  it('the native Unet has the reference parameter names and shapes', () => {
    const unet = referenceUnet();
    const traced = jit.load(path.join(REFERENCE, 'unet_traced.pt'));
    const ours = unet.namedParameters();
    const theirs = traced.namedParameters();
    assert.deepStrictEqual(Object.keys(ours).sort(), Object.keys(theirs).sort());
    for (const k of Object.keys(ours)) assert.deepStrictEqual(ours[k].shape, theirs[k].shape, k);
  });

  it('classifierCondFn in TypeScript reproduces cond_grad.f32 within 10 float32 ulps (measured equal)', () => {
    const classifier = jit.load(path.join(REFERENCE, 'classifier.pt'));
    const g = classifierCondFn(input(), torch.tensor(rc.forward_t), {
      classifier,
      y: torch.tensor(rc.y),
      classifierScale: rc.classifier_scale,
    });
    assertClose(g.toFloat32Array(), ref('cond_grad'), f32Tol(ref('cond_grad')), 'gradient'); // measured 0
  });

  for (const [name, condFn] of [
    ['JS classifierCondFn', classifierCondFn],
    ['native classifierGuidance', classifierGuidance],
  ] as const) {
    it(`guided ancestral sample with ${name} reproduces ddpm_guided.f32 within 6e-6 (measured 7.7e-7)`, async () => {
      const diffusion = new GaussianDiffusion(referenceUnet(), { imageSize: 16, timesteps: 20, betaSchedule: 'sigmoid' });
      const classifier = jit.load(path.join(REFERENCE, 'classifier.pt'));
      torch.manualSeed(42);
      const img = await diffusion.sample({
        batchSize: 2,
        condFn,
        guidanceKwargs: { classifier, y: torch.tensor(rc.y), classifierScale: rc.classifier_scale },
      });
      assert.deepStrictEqual(img.shape, [2, 3, 16, 16]);
      assertClose(img.toFloat32Array(), ref('ddpm_guided'), 6e-6, 'sample'); // measured 7.7e-7
    });
  }

  it('the traced checkpoint samples the same as the native Unet', async () => {
    const classifier = jit.load(path.join(REFERENCE, 'classifier.pt'));
    const kwargs = { classifier, y: torch.tensor(rc.y), classifierScale: rc.classifier_scale };
    const diffusion = new GaussianDiffusion(jit.load(path.join(REFERENCE, 'unet_traced.pt')), { imageSize: 16, timesteps: 20 });
    const img = await diffusion.sample({ batchSize: 2, condFn: classifierGuidance, guidanceKwargs: kwargs, seed: 42 });
    assertClose(img.toFloat32Array(), ref('ddpm_guided'), 6e-6, 'traced sample'); // measured 0 (the reference's own graph)
  });
});
