// openai/guided-diffusion's training_losses in our GaussianDiffusion.trainingLosses: the terms
// loss / mse / vb per sample for every loss type, learned and fixed variances, eps and x0
// prediction, respaced and rescaled timesteps, class labels; and the gradients they give the
// weights, which show the vb term reaching only the variance half of the output (fixtures:
// scripts/fixtures/openai_training.py, their code on their traced nets).
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { jit, torch, Tensor } from '../lib';
import type { LossType } from '../lib';
import { createGaussianDiffusion } from '../lib/openai/diffusion';
import { FIXTURES } from './helpers';

const DIR = path.join(FIXTURES, 'openai-training');
const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'losses.json'), 'utf8'));
interface Case {
  net: 'cond' | 'uncond';
  flags: Record<string, unknown>;
  loss_type: string;
  loss_type_forced: boolean;
  t: number[];
  terms: Record<string, number[]>;
  grad_norms_loss: number[];
  grad_norms_vb?: number[];
}
const LOSS_TYPE: Record<string, string> = { mse: 'mse', rescaled_mse: 'rescaledMse', kl: 'kl', rescaled_kl: 'rescaledKl' };
// Their flags as create_gaussian_diffusion's kwargs: steps is diffusion_steps.
const toFlags = (f: Record<string, unknown>): Record<string, unknown> => {
  const { steps, ...rest } = f;
  return { ...rest, diffusion_steps: steps, image_size: fixture.image_size };
};
// float32 values of up to ~1e6: 1e-5 absolute below 1, relative above.
const within = (ours: number, theirs: number, tol: number): boolean => Math.abs(ours - theirs) <= tol * Math.max(1, Math.abs(theirs));
const worst = (ours: ArrayLike<number>, theirs: number[]): number =>
  Math.max(...theirs.map((v, i) => Math.abs(ours[i] - v) / Math.max(1, Math.abs(v))));

describe('openai training_losses', () => {
  let threads: number;
  const nets = { cond: jit.load(path.join(DIR, 'cond_unet.pt')), uncond: jit.load(path.join(DIR, 'uncond_unet.pt')) };
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => {
    torch.setNumThreads(threads);
    nets.cond.dispose();
    nets.uncond.dispose();
  });

  const cases = fixture.cases as Case[];
  it('has the fixture cases (8: every loss type, learned and fixed variance, eps and x0)', () => {
    assert.strictEqual(cases.length, 8);
    assert.deepStrictEqual([...new Set(cases.map((c) => c.loss_type))].sort(), ['kl', 'mse', 'rescaled_kl', 'rescaled_mse']);
  });

  for (const c of cases) {
    const name = `${c.loss_type} ${JSON.stringify(c.flags)} t=${c.t}`;
    it(`gives their terms and weight gradients: ${name}`, () => {
      const before = torch.memory().tensors;
      torch.tidy(() => {
        const net = nets[c.net];
        // Their flags reach every loss type but plain kl, which the script sets by hand.
        const d = c.loss_type_forced
          ? createGaussianDiffusion(net, toFlags(c.flags), { lossType: LOSS_TYPE[c.loss_type] as LossType })
          : createGaussianDiffusion(net, toFlags(c.flags));
        assert.strictEqual(d.options.lossType, LOSS_TYPE[c.loss_type]);
        const x0 = torch.tensor(Float32Array.from(fixture.x_start), { shape: fixture.shape });
        const noise = torch.tensor(Float32Array.from(fixture.noise), { shape: fixture.shape });
        const t = torch.tensor(c.t, { dtype: 'int64' });
        const y = torch.tensor(fixture.y, { dtype: 'int64' });
        const terms = d.trainingLosses(x0, t, { noise, ...(c.net === 'cond' ? { modelKwargs: { y } } : {}) });
        assert.deepStrictEqual(Object.keys(terms).sort(), Object.keys(c.terms).sort());
        for (const key of Object.keys(c.terms)) {
          const ours = (terms as unknown as Record<string, Tensor>)[key].data() as Float32Array;
          const err = worst(ours, c.terms[key]);
          console.log(`      ${key}: ours [${[...ours].map((v) => v.toPrecision(6))}] max rel-or-abs diff ${err.toExponential(2)}`);
          assert.ok(err <= 1e-5, `${key}: ${err}`);
        }
        const params = Object.values(net.namedParameters());
        const check = (total: Tensor, expected: number[], what: string): void => {
          const grads = torch.autograd.grad(total, params, { retainGraph: true, allowUnused: true });
          let err = 0;
          grads.forEach((g, i) => {
            const norm = g === null ? 0 : (g.square().sum().sqrt().item() as number);
            assert.ok(within(norm, expected[i], 1e-4), `${what} grad norm of parameter ${i}: ${norm} vs ${expected[i]}`);
            err = Math.max(err, Math.abs(norm - expected[i]) / Math.max(1, Math.abs(expected[i])));
          });
          console.log(`      d(sum ${what})/dW: ${grads.length} parameter gradient norms, max rel-or-abs diff ${err.toExponential(2)}`);
        };
        check(terms.loss.sum(), c.grad_norms_loss, 'loss');
        if (c.grad_norms_vb) check(terms.vb!.sum(), c.grad_norms_vb, 'vb');
      });
      assert.strictEqual(torch.memory().tensors, before);
    });
  }

  it('the vb term does not train the mean: its gradient on the mean half of the last conv is 0', () => {
    torch.tidy(() => {
      const d = createGaussianDiffusion(nets.cond, { learn_sigma: true, image_size: 8 });
      const x0 = torch.tensor(Float32Array.from(fixture.x_start), { shape: fixture.shape });
      const terms = d.trainingLosses(x0, torch.tensor([3, 30, 300, 900], { dtype: 'int64' }), { modelKwargs: { y: torch.tensor(fixture.y, { dtype: 'int64' }) } });
      const named = nets.cond.namedParameters();
      const last = Object.keys(named).filter((k) => k.startsWith('out.')).pop()!;
      const [g] = torch.autograd.grad(terms.vb!.sum(), [named[last]]);
      const bias = g!; // out.2.bias: 6 channels, eps then variance values
      const values = [...(bias.data() as Float32Array)];
      console.log(`      d(vb)/d(${last}) = [${values.map((v) => v.toPrecision(3))}]`);
      assert.strictEqual(last, 'out.2.bias');
      assert.deepStrictEqual(values.slice(0, 3), [0, 0, 0]);
      assert.ok(values.slice(3).every((v) => v !== 0));
    });
  });

  it('refuses a bad lossType, unknown options and labels of the wrong count by name', () => {
    assert.throws(() => createGaussianDiffusion(nets.uncond, { image_size: 8 }, { lossType: 'l2' as 'kl' }), {
      message: "lossType must be one of mse, rescaledMse, kl, rescaledKl; got 'l2'",
    });
    torch.tidy(() => {
      const d = createGaussianDiffusion(nets.cond, { learn_sigma: true, image_size: 8 });
      const x0 = torch.zeros([2, 3, 8, 8]);
      const t = torch.tensor([1, 2], { dtype: 'int64' });
      assert.throws(() => d.trainingLosses(x0, t, { nosie: x0 } as never), /trainingLosses: unknown option 'nosie' \(did you mean 'noise'\?\)/);
      assert.throws(() => d.trainingLosses(x0, t, { modelKwargs: { y: torch.tensor([1, 2, 3], { dtype: 'int64' }) } }), {
        message: 'modelKwargs.y has 3 labels for a batch of 2',
      });
      assert.throws(() => d.trainingLosses(x0, torch.tensor([0, 1000], { dtype: 'int64' }), { modelKwargs: { y: t } }), /trainingLosses: t holds 1000, outside the schedule's steps 0..999/);
      assert.throws(() => d.trainingLosses(x0, t, { noise: torch.zeros([2, 3, 4, 4]), modelKwargs: { y: t } }), {
        message: 'noise must have the shape of x0 [2, 3, 8, 8]; got [2, 3, 4, 4]',
      });
    });
  });
});
