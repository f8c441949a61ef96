// DDIM with eta 1 over a cosine schedule's first step (t = 999, alphaBar ~ 0): the noise
// coefficient sqrt(1 - alphaBar_next - sigma^2) is 0 in exact arithmetic and rounded to -6e-8 in
// float32, so the sample was NaN (found by the examples, examples/README.md). It is clamped at 0.
import * as assert from 'assert';
import * as path from 'path';
import { GaussianDiffusion, jit } from '../lib';
import { FIXTURES } from './helpers';

describe('DDIM eta 1 on a cosine schedule', () => {
  it('5 steps from t = 999 give a finite sample (the coefficient that rounds below 0 is clamped at 0)', async () => {
    const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
    const d = new GaussianDiffusion(toy, { imageSize: 4, channels: 1, timesteps: 1000, samplingTimesteps: 5, betaSchedule: 'cosine' });
    const out = await d.sample({ batchSize: 2, seed: 1, sampler: 'ddim', eta: 1 });
    const v = out.toFloat32Array();
    const nonFinite = v.filter((x) => !Number.isFinite(x)).length;
    console.log(`      ${v.length} values, ${nonFinite} not finite; max |x| ${Math.max(...v.map(Math.abs)).toFixed(3)}`);
    assert.strictEqual(nonFinite, 0);
    out.dispose();
    toy.dispose();
  });
});
