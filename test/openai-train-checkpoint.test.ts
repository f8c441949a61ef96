// openai TrainLoop checkpoints (native/diffusion/openai_train_checkpoint.cc): save() writes their
// layout (model{N}.pt, ema_{rate}_{N}.pt with Python's str(rate), opt{N}.pt) as torch.save files
// that Python loads with weights_only=True and that torch.optim.AdamW.load_state_dict takes; a
// loop resumed from them continues bit for bit as the one that wrote them; their resume quirks
// (step from the name, no EMA or optimizer for step 0) hold; bad files are named.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { jit, Module, openai, readStateDict, Tensor, torch } from '../lib';
import { FIXTURES, testPython } from './helpers';

const NET = path.join(FIXTURES, 'openai-training', 'train_unet.pt');
const FLAGS = { lr: 1e-3, weight_decay: 0.05, lr_anneal_steps: 20, ema_rate: '0.9,0.9999,1,1e-5', seed: 3 };

function maxDiff(a: Record<string, Tensor>, b: Record<string, Tensor>): number {
  let worst = 0;
  assert.deepStrictEqual(Object.keys(a), Object.keys(b));
  for (const k of Object.keys(a)) {
    const x = a[k].data() as Float32Array;
    const y = b[k].data() as Float32Array;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  }
  return worst;
}

describe('openai TrainLoop checkpoints', () => {
  let tmp: string;
  let nets: Module[] = [];
  const net = (): Module => {
    const m = jit.load(NET);
    nets.push(m);
    return m;
  };
  const loopOn = (m: Module, flags: openai.OpenAITrainFlags = {}): openai.TrainLoop =>
    new openai.TrainLoop(openai.createGaussianDiffusion(m, { learn_sigma: true, image_size: 8 }), { ...FLAGS, ...flags });
  const step = (loop: openai.TrainLoop, k: number): Record<string, number> =>
    torch.tidy(() => {
      torch.manualSeed(100 + k);
      const x = torch.rand([4, 3, 8, 8]).mul(2).sub(1);
      return loop.runStep(x, { y: torch.tensor([1, 2, 3, 4]), t: torch.tensor([3 * k, 400, 999 - k, 700]), weights: torch.tensor([1, 0.5, 2, 1]), noise: torch.randn([4, 3, 8, 8]) });
    });
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-openai-ckpt-'));
  });
  afterEach(() => {
    nets.forEach((m) => m.dispose());
    nets = [];
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('save() writes their file names and a loop resumed from them continues bit for bit (weights, EMAs, loss, lr annealing)', () => {
    const before = torch.memory().tensors;
    const dir = fs.mkdtempSync(path.join(tmp, 'a-'));
    const a = loopOn(net());
    for (let k = 0; k < 3; k++) step(a, k);
    const files = a.save(dir).map((f) => path.basename(f));
    assert.deepStrictEqual(files, ['model000003.pt', 'ema_0.9_000003.pt', 'ema_0.9999_000003.pt', 'ema_1.0_000003.pt', 'ema_1e-05_000003.pt', 'opt000003.pt']);
    const bNet = net();
    const b = loopOn(bNet, { resume_checkpoint: path.join(dir, 'model000003.pt') });
    assert.strictEqual(b.resumeStep, 3);
    assert.strictEqual(b.step, 0);
    let worst = 0;
    for (let k = 3; k < 6; k++) {
      const la = step(a, k);
      const lb = step(b, k);
      assert.strictEqual(lb.step, la.step);
      assert.strictEqual(lb.samples, la.samples);
      assert.strictEqual(lb.loss, la.loss, `step ${k}`);
      worst = Math.max(worst, Math.abs(lb.grad_norm - la.grad_norm));
    }
    assert.strictEqual(worst, 0);
    torch.tidy(() => {
      assert.strictEqual(maxDiff(bNet.namedParameters(), nets[0].namedParameters()), 0);
      for (let r = 0; r < 4; r++) assert.strictEqual(maxDiff(b.emaParameters(r), a.emaParameters(r)), 0, `ema ${r}`);
      // The rate-1 EMA never moves: it is still the weights the run started from.
      const start = jit.load(NET);
      assert.strictEqual(maxDiff(b.emaParameters(2), start.namedParameters()), 0);
      start.dispose();
    });
    console.log(`      3 steps, saved, resumed at step ${b.resumeStep}: 3 more steps on both give equal losses, weights and 4 EMAs (max diff 0)`);
    assert.strictEqual(torch.memory().tensors, before);
  });

  it('Python loads the files with weights_only=True, and AdamW.load_state_dict takes opt{N}.pt', function () {
    const dir = fs.mkdtempSync(path.join(tmp, 'py-'));
    const a = loopOn(net());
    for (let k = 0; k < 2; k++) step(a, k);
    a.save(dir);
    const script = `
import sys, torch
d = sys.argv[1]
m = torch.load(d + "/model000002.pt", weights_only=True)
e = torch.load(d + "/ema_0.9_000002.pt", weights_only=True)
o = torch.load(d + "/opt000002.pt", weights_only=True)
params = [torch.nn.Parameter(t.clone()) for t in m.values()]
opt = torch.optim.AdamW(params, lr=1, weight_decay=0)
opt.load_state_dict(o)
g = opt.param_groups[0]
s = opt.state[params[0]]
print(type(m).__name__, len(m), len(e), len(o["state"]), g["lr"], g["weight_decay"], g["betas"], float(s["step"]), s["exp_avg"].shape == params[0].shape)
`;
    const r = spawnSync(testPython(), ['-c', script, dir], { encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stderr);
    const n = Object.keys(nets[0].namedParameters()).length;
    // lr after 2 of 20 annealed steps: 1e-3 * (1 - 1/20).
    assert.strictEqual(r.stdout.trim(), `OrderedDict ${n} ${n} ${n} 0.00095 0.05 (0.9, 0.999) 2.0 True`);
    console.log(`      torch.load + AdamW.load_state_dict: ${r.stdout.trim()}`);
    const ours = readStateDict(path.join(dir, 'model000002.pt'));
    torch.tidy(() => assert.strictEqual(maxDiff(ours, nets[0].namedParameters()), 0));
    Object.values(ours).forEach((t) => t.dispose());
  });

  it('resumes as theirs from model000000.pt: the weights only (EMAs are copies of them, the optimizer fresh); missing EMA files start from the weights', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'zero-'));
    const a = loopOn(net());
    step(a, 0);
    a.save(path.join(dir));
    fs.renameSync(path.join(dir, 'model000001.pt'), path.join(dir, 'model000000.pt'));
    fs.renameSync(path.join(dir, 'opt000001.pt'), path.join(dir, 'opt000000.pt'));
    const bNet = net();
    const b = loopOn(bNet, { resume_checkpoint: path.join(dir, 'model000000.pt') });
    assert.strictEqual(b.resumeStep, 0);
    torch.tidy(() => {
      assert.strictEqual(maxDiff(bNet.namedParameters(), nets[0].namedParameters()), 0);
      assert.strictEqual(maxDiff(b.emaParameters(1), bNet.namedParameters()), 0);
    });
    // The optimizer is fresh: b's next step equals that of a new loop on the same weights, and
    // differs from one resumed with opt000001.pt (a second AdamW step, its moments carried).
    const plainNet = net();
    torch.tidy(() => plainNet.loadStateDict(readStateDict(path.join(dir, 'model000000.pt'))));
    const plain = loopOn(plainNet);
    fs.copyFileSync(path.join(dir, 'model000000.pt'), path.join(dir, 'model000001.pt'));
    fs.renameSync(path.join(dir, 'opt000000.pt'), path.join(dir, 'opt000001.pt'));
    const withOptNet = net();
    const withOpt = loopOn(withOptNet, { resume_checkpoint: path.join(dir, 'model000001.pt') });
    fs.rmSync(path.join(dir, 'model000001.pt'));
    step(b, 1);
    step(plain, 1);
    step(withOpt, 1);
    torch.tidy(() => {
      assert.strictEqual(maxDiff(bNet.namedParameters(), plainNet.namedParameters()), 0);
      const apart = maxDiff(bNet.namedParameters(), withOptNet.namedParameters());
      console.log(`      resumed from model000000.pt: the next step equals a fresh AdamW's; one with the saved moments differs by ${apart.toExponential(2)}`);
      assert.ok(apart > 1e-5);
    });
    fs.renameSync(path.join(dir, 'model000000.pt'), path.join(dir, 'model000001.pt'));
    fs.rmSync(path.join(dir, 'ema_0.9_000001.pt'));
    const c = loopOn(net(), { resume_checkpoint: path.join(dir, 'model000001.pt') });
    torch.tidy(() => assert.strictEqual(maxDiff(c.emaParameters(0), nets[nets.length - 1].namedParameters()), 0));
    torch.tidy(() => assert.ok(maxDiff(c.emaParameters(1), nets[nets.length - 1].namedParameters()) > 0));
  });

  it('names the file that does not fit', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'bad-'));
    fs.writeFileSync(path.join(dir, 'model000004.pt'), 'not a checkpoint');
    assert.throws(() => loopOn(net(), { resume_checkpoint: path.join(dir, 'model000004.pt') }), /resume_checkpoint: .*model000004\.pt is not a valid torch\.save file/);
    const other = new openai.UNetModel({ image_size: 8, in_channels: 3, model_channels: 32, out_channels: 3, num_res_blocks: 1, attention_resolutions: [], channel_mult: [1] });
    const loop = new openai.TrainLoop(openai.createGaussianDiffusion(other, { image_size: 8 }), { lr: 1e-3 });
    loop.save(dir);
    assert.throws(() => loopOn(net(), { resume_checkpoint: path.join(dir, 'model000000.pt') }), /resume_checkpoint: .*model000000\.pt does not fit the model: load_named_tensors: /);
    assert.throws(() => loopOn(net(), { resume_checkpoint: 7 as never }), /resume_checkpoint must be a path/);
    other.dispose();
  });
});
