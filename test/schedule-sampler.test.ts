// openai's schedule samplers (resample.py): the loss-second-moment weights after a history of
// updates, against theirs (fixture: scripts/fixtures/openai_schedule_sampler.py), its warm-up,
// and the importance weights of a draw.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { createNamedScheduleSampler, jit, ScheduleSampler, torch } from '../lib';
import { createGaussianDiffusion } from '../lib/openai/diffusion';
import { FIXTURES } from './helpers';

const fixture = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'openai-training', 'schedule_sampler.json'), 'utf8'));
interface Round { ts: number[]; losses: number[]; warmed_up: boolean; weights: number[] }

describe('schedule samplers', () => {
  it("loss-second-moment: their weights after every round of updates (ones until warmed up), within 1e-12", () => {
    const rounds = fixture.rounds as Round[];
    const sampler = new ScheduleSampler('loss-second-moment', fixture.timesteps as number);
    let worst = 0;
    let warmedAt = -1;
    rounds.forEach((r, i) => {
      sampler.updateWithAllLosses(r.ts, r.losses);
      const w = sampler.weights();
      assert.strictEqual(w.length, fixture.timesteps);
      if (r.warmed_up && warmedAt < 0) warmedAt = i;
      if (!r.warmed_up) assert.ok(w.every((v) => v === 1), `round ${i}: ones before warm-up`);
      r.weights.forEach((v, t) => (worst = Math.max(worst, Math.abs(w[t] - v))));
    });
    const last = rounds[rounds.length - 1].weights;
    console.log(`      ${rounds.length} rounds of 8 updates, warmed up at round ${warmedAt}; max |ours - theirs| ${worst.toExponential(2)}; last weights ${Math.min(...last).toFixed(4)}..${Math.max(...last).toFixed(4)}`);
    assert.strictEqual(warmedAt, 61);
    assert.ok(worst <= 1e-12, `${worst}`);
  });

  it('uniform: weights 1, draws weighted 1; loss-second-moment draws weighted 1 / (T p_t)', () => {
    const uniform = new ScheduleSampler('uniform', 20);
    assert.deepStrictEqual([...uniform.weights()], fixture.uniform_weights);
    const before = torch.memory().tensors;
    torch.tidy(() => {
      const u = uniform.sample(64, 3);
      assert.deepStrictEqual(u.t.shape, [64]);
      assert.strictEqual(u.t.dtype, 'int64');
      assert.ok([...(u.weights.data() as Float32Array)].every((v) => v === 1));
      const rounds = fixture.rounds as Round[];
      const aware = new ScheduleSampler('loss-second-moment', 20);
      for (const r of rounds) aware.updateWithAllLosses(r.ts, r.losses);
      const w = aware.weights();
      const total = w.reduce((a, b) => a + b, 0);
      const draw = aware.sample(4096, 7);
      const ts = [...(draw.t.data() as BigInt64Array)].map(Number);
      const ws = draw.weights.data() as Float32Array;
      ts.forEach((t, i) => assert.ok(Math.abs(ws[i] - 1 / (20 * (w[t] / total))) <= 1e-5 * ws[i], `weight of t=${t}`));
      // The draw follows p: the mean importance weight estimates sum_t p_t / (T p_t) = 1.
      const mean = ws.reduce((a, b) => a + b, 0) / ws.length;
      const highShare = ts.filter((t) => t >= 10).length / ts.length;
      console.log(`      4096 draws: mean importance weight ${mean.toFixed(4)}, share of t >= 10 ${highShare.toFixed(3)} (p says ${(w.slice(10).reduce((a, b) => a + b, 0) / total).toFixed(3)})`);
      assert.ok(Math.abs(mean - 1) < 0.05);
      assert.ok(Math.abs(highShare - w.slice(10).reduce((a, b) => a + b, 0) / total) < 0.03);
    });
    assert.strictEqual(torch.memory().tensors, before);
  });

  it("createNamedScheduleSampler takes the diffusion's (respaced) steps; bad names and options are refused", () => {
    const net = jit.load(path.join(FIXTURES, 'openai-training', 'uncond_unet.pt'));
    const d = createGaussianDiffusion(net, { image_size: 8, timestep_respacing: '50' });
    assert.strictEqual(createNamedScheduleSampler('uniform', d).weights().length, 50);
    assert.throws(() => new ScheduleSampler('importance' as 'uniform', 10), { message: "scheduleSampler must be 'uniform' or 'loss-second-moment'; got 'importance'" });
    assert.throws(() => new ScheduleSampler('uniform', 10, { historyPerTrem: 3 } as never), /ScheduleSampler: unknown option 'historyPerTrem' \(did you mean 'historyPerTerm'\?\)/);
    const s = new ScheduleSampler('loss-second-moment', 10);
    assert.throws(() => s.updateWithAllLosses([10], [1]), { message: 'timestep 10 is outside 0..9' });
    assert.throws(() => s.updateWithAllLosses([1, 2], [1]), { message: 'a schedule sampler update needs one loss per timestep' });
    net.dispose();
  });
});
