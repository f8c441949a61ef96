// Checkpoints crossing between openai/guided-diffusion's TrainLoop and ours (fixture:
// scripts/fixtures/openai_train_resume.py, run against their code): (a) their loop resumed from a
// checkpoint OUR TrainLoop wrote, and ours resumed from the same files, take the same next step;
// (b) ours resumed from the checkpoint THEIR save() wrote takes the step theirs took after it.
// Loss, mse, vb, their quartile keys and grad_norm within 1e-5 (relative, or absolute below 1);
// weights and both EMAs within 1e-5.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { jit, openai, readStateDict, Tensor, torch } from '../lib';
import { FIXTURES, readF32 } from './helpers';

const DIR = path.join(FIXTURES, 'openai-resume');
const NET = path.join(FIXTURES, 'openai-training', 'train_unet.pt');
const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'resume.json'), 'utf8'));
const blob = readF32(path.join(DIR, 'resume.f32'));
// eslint-disable-next-line @typescript-eslint/no-var-requires
const ours = require(path.resolve(__dirname, '..', '..', 'scripts', 'fixtures', 'openai_resume_ours.js')) as {
  writeOurs(dir: string): string[];
  FLAGS: Record<string, unknown>;
};

function arr(name: string): Float32Array {
  const e = fixture.index[name];
  assert.ok(e, `fixture ${name}`);
  return blob.subarray(e.offset, e.offset + e.shape.reduce((a: number, b: number) => a * b, 1));
}
const tensorOf = (name: string): Tensor => torch.tensor(arr(name), { shape: fixture.index[name].shape });

function worstDiff(a: Record<string, Tensor>, b: Record<string, Tensor> | ((name: string) => Float32Array)): number {
  let worst = 0;
  for (const name of Object.keys(a)) {
    const x = a[name].data() as Float32Array;
    const y = typeof b === 'function' ? b(name) : (b[name].data() as Float32Array);
    assert.strictEqual(x.length, y.length, name);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  }
  return worst;
}

describe('openai TrainLoop checkpoints cross between their code and ours', () => {
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => torch.setNumThreads(threads));

  it('the committed model000002.pt and its EMAs are what our TrainLoop writes today, with the flags their loop used', () => {
    assert.deepStrictEqual(ours.FLAGS, fixture.flags);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-resume-ours-'));
    try {
      const files = ours.writeOurs(tmp).map((f) => path.basename(f));
      assert.deepStrictEqual(files, ['model000002.pt', 'ema_0.9_000002.pt', 'ema_0.99_000002.pt', 'opt000002.pt']);
      let worst = 0;
      torch.tidy(() => {
        for (const f of files.slice(0, 3)) worst = Math.max(worst, worstDiff(readStateDict(path.join(tmp, f)), readStateDict(path.join(DIR, f))));
      });
      console.log(`      rewritten by our TrainLoop now: model and EMA weights within ${worst.toExponential(2)} of the committed files`);
      assert.ok(worst <= 1e-6);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  for (const [name, file, what] of [
    ['theirs_from_ours', 'model000002.pt', '(a) their TrainLoop and ours, resumed from OUR model000002.pt, take the same next step'],
    ['theirs_after_save', 'model000003.pt', '(b) ours, resumed from THEIR model000003.pt, takes the step theirs took after saving it'],
  ] as const) {
    it(what, () => {
      const c = fixture.cases[name];
      const net = jit.load(NET);
      const before = torch.memory().tensors;
      torch.tidy(() => {
        const loop = new openai.TrainLoop(openai.createGaussianDiffusion(net, { learn_sigma: true, image_size: 8 }), {
          ...fixture.flags,
          resume_checkpoint: path.join(DIR, file),
        });
        assert.strictEqual(loop.resumeStep, Number(file.slice(5, 11)));
        const log = loop.runStep(tensorOf(`${name}/batch`), {
          y: torch.tensor(c.y, { dtype: 'int64' }),
          t: torch.tensor(c.t, { dtype: 'int64' }),
          weights: torch.tensor(c.weights),
          noise: tensorOf(`${name}/noise`),
        });
        const theirs = c.log as Record<string, number>;
        assert.deepStrictEqual(Object.keys(log).sort(), Object.keys(theirs).sort());
        let worstLog = 0;
        for (const key of Object.keys(theirs)) {
          const err = Math.abs(log[key] - theirs[key]) / Math.max(1, Math.abs(theirs[key]));
          worstLog = Math.max(worstLog, err);
          assert.ok(err <= 1e-5, `${key}: ours ${log[key]} theirs ${theirs[key]}`);
        }
        const model = worstDiff(net.namedParameters(), (n) => arr(`${name}/model/${n}`));
        assert.ok(model <= 1e-5, `model ${model}`);
        const emas = (fixture.ema_rate as number[]).map((rate, i) => worstDiff(loop.emaParameters(i), (n) => arr(`${name}/ema_${rate}/${n}`)));
        emas.forEach((e, i) => assert.ok(e <= 1e-5, `ema ${fixture.ema_rate[i]}: ${e}`));
        console.log(`      step ${log.step} after resume_step ${loop.resumeStep}: loss ours ${log.loss.toFixed(6)} theirs ${theirs.loss.toFixed(6)}; ${Object.keys(theirs).length} keys within ${worstLog.toExponential(2)}; weights within ${model.toExponential(2)}, EMAs ${emas.map((e) => e.toExponential(2)).join(', ')}`);
      });
      assert.strictEqual(torch.memory().tensors, before);
      net.dispose();
    });
  }
});
