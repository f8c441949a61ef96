// openai/guided-diffusion's TrainLoop steps in our TrainLoop: from the same traced net, batch,
// timesteps, loss weights and noise, two steps (AdamW with weight decay, two microbatches, lr
// annealing, two EMA rates) give their weights, EMA weights and logged keys (fixture:
// scripts/fixtures/openai_train_step.py).
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { jit, openai, torch, Tensor } from '../lib';
import { FIXTURES, readF32 } from './helpers';

const DIR = path.join(FIXTURES, 'openai-training');
const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'train_step.json'), 'utf8'));
const blob = readF32(path.join(DIR, 'train_step.f32'));
function arr(name: string): Float32Array {
  const e = fixture.index[name];
  assert.ok(e, `fixture ${name}`);
  return blob.subarray(e.offset, e.offset + e.shape.reduce((a: number, b: number) => a * b, 1));
}
const tensorOf = (name: string): Tensor => torch.tensor(arr(name), { shape: fixture.index[name].shape });

describe('openai TrainLoop step', () => {
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => torch.setNumThreads(threads));

  it('two steps from the same state give their weights and both EMAs within 1e-5, and their logged keys', () => {
    const net = jit.load(path.join(DIR, 'train_unet.pt'));
    const before = torch.memory().tensors;
    torch.tidy(() => {
      const diffusion = openai.createGaussianDiffusion(net, { learn_sigma: true, image_size: 8 });
      const loop = new openai.TrainLoop(diffusion, fixture.flags);
      assert.deepStrictEqual(loop.flags.ema_rate, [0.9, 0.99]);
      const batch = tensorOf('batch');
      const y = torch.tensor(fixture.y, { dtype: 'int64' });
      (fixture.steps as { t: number[]; weights: number[] }[]).forEach((s, k) => {
        const log = loop.runStep(batch, { y, t: torch.tensor(s.t, { dtype: 'int64' }), weights: torch.tensor(s.weights), noise: tensorOf(`noise${k}`) });
        const theirs = fixture.logs[k] as Record<string, number>;
        assert.deepStrictEqual(Object.keys(log).sort(), Object.keys(theirs).sort());
        let worst = 0;
        for (const key of Object.keys(theirs)) {
          const err = Math.abs(log[key] - theirs[key]) / Math.max(1, Math.abs(theirs[key]));
          worst = Math.max(worst, err);
          assert.ok(err <= 1e-5, `step ${k} ${key}: ${log[key]} vs ${theirs[key]}`);
        }
        console.log(`      step ${k}: loss ${log.loss.toFixed(5)} mse ${log.mse.toFixed(5)} vb ${log.vb.toFixed(5)} grad_norm ${log.grad_norm.toFixed(4)}; ${Object.keys(theirs).length} keys, max rel-or-abs diff ${worst.toExponential(2)}`);
      });
      assert.strictEqual(loop.step, 2);
      const compare = (what: string, ours: Record<string, Tensor>): void => {
        let worst = 0;
        for (const name of fixture.param_names as string[]) {
          const a = ours[name].data() as Float32Array;
          const b = arr(`${what}/${name}`);
          assert.strictEqual(a.length, b.length, name);
          for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
        }
        console.log(`      ${what}: ${(fixture.param_names as string[]).length} tensors, max |ours - theirs| ${worst.toExponential(2)}`);
        assert.ok(worst <= 1e-5, `${what}: ${worst}`);
      };
      // Their steps move the weights far more than the tolerance: agreeing is not standing still.
      const start = jit.load(path.join(DIR, 'train_unet.pt'));
      let moved = 0;
      for (const name of fixture.param_names as string[]) {
        const a = start.namedParameters()[name].data() as Float32Array;
        arr(`model/${name}`).forEach((v, i) => (moved = Math.max(moved, Math.abs(v - a[i]))));
      }
      start.dispose();
      console.log(`      their two steps moved a weight by up to ${moved.toExponential(2)}`);
      assert.ok(moved > 1e-3);
      compare('model', net.namedParameters());
      fixture.ema_rate.forEach((rate: number, i: number) => compare(`ema_${rate}`, loop.emaParameters(i)));
    });
    assert.strictEqual(torch.memory().tensors, before);
    net.dispose();
  });

  it('microbatches accumulate as theirs (a sum of the chunks\' means): grad_norm doubles for 2 chunks', () => {
    const run = (microbatch: number): { log: Record<string, number>; weights: Float32Array[] } => {
      const net = jit.load(path.join(DIR, 'train_unet.pt'));
      const out = torch.tidy(() => {
        const loop = new openai.TrainLoop(openai.createGaussianDiffusion(net, { learn_sigma: true, image_size: 8 }), { lr: 1e-3, microbatch });
        const s = fixture.steps[0];
        const log = loop.runStep(tensorOf('batch'), { y: torch.tensor(fixture.y, { dtype: 'int64' }), t: torch.tensor(s.t, { dtype: 'int64' }), weights: torch.tensor(s.weights), noise: tensorOf('noise0') });
        return { log, weights: Object.values(net.namedParameters()).map((p) => Float32Array.from(p.data() as Float32Array)) };
      });
      net.dispose();
      return out;
    };
    const whole = run(-1);
    const chunks = run(2);
    // Adam divides the gradient by its own scale, so the steps differ only through eps (and
    // where a gradient is rounding noise): printed, not a claim.
    let off = 0;
    let total = 0;
    whole.weights.forEach((w, k) => w.forEach((v, i) => {
      total++;
      if (Math.abs(v - chunks.weights[k][i]) > 1e-6) off++;
    }));
    console.log(`      grad_norm whole batch ${whole.log.grad_norm.toFixed(5)}, 2 microbatches ${chunks.log.grad_norm.toFixed(5)}; loss ${whole.log.loss.toFixed(6)} / ${chunks.log.loss.toFixed(6)}; weights differing by > 1e-6: ${off} of ${total}`);
    assert.ok(Math.abs(chunks.log.grad_norm / whole.log.grad_norm - 2) < 1e-4);
    assert.ok(Math.abs(chunks.log.loss - whole.log.loss) < 1e-5);
  });

  it('refuses unknown flags and bad values by name', () => {
    const net = jit.load(path.join(DIR, 'train_unet.pt'));
    const diffusion = openai.createGaussianDiffusion(net, { learn_sigma: true, image_size: 8 });
    assert.throws(() => new openai.TrainLoop(diffusion, { lr: 1e-4, ema_rates: '0.9' } as never), /TrainLoop: unknown option 'ema_rates' \(did you mean 'ema_rate'\?\)/);
    assert.throws(() => new openai.TrainLoop(diffusion, { ema_rate: '0.9,x' }), { message: 'ema_rate: expected a number but received x' });
    assert.throws(() => new openai.TrainLoop(diffusion, { ema_rate: '1.5' }), { message: 'each ema_rate must be in [0, 1]; got 1.5' });
    assert.throws(() => new openai.TrainLoop(diffusion, { lr: 0 }), { message: 'lr must be a positive number; got 0' });
    const loop = new openai.TrainLoop(diffusion, {});
    torch.tidy(() => {
      assert.throws(() => loop.runStep(torch.zeros([2, 3, 8, 8]), { y: torch.tensor([1, 2], { dtype: 'int64' }), t: torch.tensor([1, 2], { dtype: 'int64' }) }), {
        message: 't and weights go together: give both or neither',
      });
      assert.throws(() => loop.runStep(torch.zeros([2, 3, 8, 8]), { y: torch.tensor([1, 2], { dtype: 'int64' }), nosie: 1 } as never), /runStep: unknown option 'nosie'/);
    });
    net.dispose();
  });
});
