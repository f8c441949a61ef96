// openai/guided-diffusion's TrainLoop with use_fp16 (fp16_util.MixedPrecisionTrainer) in our
// TrainLoop, on the CPU in float16: from the same weights, batch, timesteps, loss weights and
// noise, eight steps give their lg_loss_scale after every step exactly (fp16_scale_growth 2 makes
// the gradients overflow float16 from lg_loss_scale 22: five of the eight steps are skipped, two
// in a row twice), their logged keys, and their master weights (what model{N}.pt holds), EMA and
// float16 weights (fixture: scripts/fixtures/openai_train_fp16.py).
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openai, readStateDict, torch, Tensor } from '../lib';
import { spawnSync } from 'child_process';
import { FIXTURES, readF32, testPython } from './helpers';

const DIR = path.join(FIXTURES, 'openai-fp16');
// float16 backward passes round differently at the last bit when their float32 inputs do (our
// scripted graph and losses against their eager ones), and AdamW's first steps move each weight
// by about lr times the sign of its gradient, so the runs part where a gradient is near 0. Their
// own TrainLoop, run with the loss times (1 + 2**-22) (one float32 ulp, the same math), ends
// 7.9% (of the distance their weights moved, L2) from itself, its logged values within 3.2e-5;
// ours (one thread, as theirs) ends 3.9% from theirs, logs within 1.7e-5.
const LOG_BOUND = 1e-4;
const WEIGHT_BOUND = 0.1;
const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'fp16.json'), 'utf8'));
const blob = readF32(path.join(DIR, 'fp16.f32'));
function arr(name: string): Float32Array {
  const e = fixture.index[name];
  assert.ok(e, `fixture ${name}`);
  return blob.subarray(e.offset, e.offset + e.shape.reduce((a: number, b: number) => a * b, 1));
}
const tensorOf = (name: string): Tensor => torch.tensor(arr(name), { shape: fixture.index[name].shape });

// Their UNetModel of the fixture, ours, with their starting weights.
function net(): openai.UNetModel {
  const n = fixture.net;
  return new openai.UNetModel({
    imageSize: n.image_size, inChannels: n.in_channels, modelChannels: n.model_channels, outChannels: n.out_channels,
    numResBlocks: n.num_res_blocks, attentionResolutions: n.attention_resolutions, channelMult: n.channel_mult,
    numClasses: n.num_classes, numHeads: n.num_heads, useFp16: n.use_fp16,
  }).loadStateDict(path.join(DIR, 'start.pt'));
}

// ||ours - theirs|| / ||theirs - start|| over all the weights, and max |ours - theirs|.
function distance(ours: Record<string, Tensor>, what: string, start: Record<string, Tensor>): { rel: number; max: number } {
  let num = 0, den = 0, max = 0;
  for (const name of fixture.param_names as string[]) {
    const a = ours[name].data() as Float32Array;
    const b = arr(`${what}/${name}`);
    const s = start[name].data() as Float32Array;
    assert.strictEqual(a.length, b.length, name);
    for (let i = 0; i < a.length; i++) {
      num += (a[i] - b[i]) ** 2;
      den += (b[i] - s[i]) ** 2;
      max = Math.max(max, Math.abs(a[i] - b[i]));
    }
  }
  return { rel: Math.sqrt(num / den), max };
}

describe('openai TrainLoop use_fp16 (dynamic loss scaling)', () => {
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => torch.setNumThreads(threads));

  it('eight float16 steps give their lg_loss_scale trajectory exactly, their logged keys, and their master, EMA and float16 weights', () => {
    const model = net();
    const half = Object.entries(model.namedParameters()).filter(([, p]) => p.dtype === 'float16').map(([n]) => n).sort();
    assert.deepStrictEqual(half, fixture.float16_params);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-fp16-'));
    const before = torch.memory().tensors;
    torch.tidy(() => {
      const diffusion = openai.createGaussianDiffusion(model, { learn_sigma: true, image_size: fixture.net.image_size });
      // Their masters are the float32 weights their convert_to_fp16 rounds: resume_checkpoint
      // gives ours the same (loading into the float16 model alone would round them).
      const loop = new openai.TrainLoop(diffusion, { ...fixture.flags, resume_checkpoint: path.join(DIR, 'start.pt') });
      assert.strictEqual(loop.lgLossScale, 20);
      const batch = tensorOf('batch');
      const y = torch.tensor(fixture.y, { dtype: 'int64' });
      const scales: number[] = [];
      let worstLog = 0;
      (fixture.steps as { t: number[]; weights: number[] }[]).forEach((s, k) => {
        const log = loop.runStep(batch, { y, t: torch.tensor(s.t, { dtype: 'int64' }), weights: torch.tensor(s.weights), noise: tensorOf(`noise${k}`) });
        scales.push(loop.lgLossScale);
        const theirs = fixture.logs[k] as Record<string, number>;
        assert.deepStrictEqual(Object.keys(log).sort(), Object.keys(theirs).sort(), `step ${k}'s keys`);
        for (const key of Object.keys(theirs)) {
          const err = Math.abs(log[key] - theirs[key]) / Math.max(1, Math.abs(theirs[key]));
          worstLog = Math.max(worstLog, err);
          assert.ok(err <= LOG_BOUND, `step ${k} ${key}: ${log[key]} vs ${theirs[key]}`);
        }
        console.log(`      step ${k}: lg_loss_scale ${log.lg_loss_scale} -> ${loop.lgLossScale}${log.grad_norm === undefined ? ' (overflow: skipped)' : `, grad_norm ${log.grad_norm.toFixed(4)}`}, loss ${log.loss.toFixed(5)}`);
      });
      console.log(`      lg_loss_scale after each step ${JSON.stringify(scales)}; their logged values within ${worstLog.toExponential(2)} (rel-or-abs)`);
      assert.deepStrictEqual(scales, fixture.lg_loss_scale);
      // What their save() writes: the float32 masters in the model's state dict layout.
      const saved = loop.save(out);
      const master = readStateDict(saved[0]);
      assert.ok(Object.values(master).every((t) => t.dtype === 'float32'));
      const start = readStateDict(path.join(DIR, 'start.pt'));
      for (const [what, ours] of [['master', master], ['ema', loop.emaParameters(0)], ['fp16', model.namedParameters()]] as const) {
        const d = distance(ours, what, start);
        console.log(`      ${what}: ||ours - theirs|| ${(100 * d.rel).toFixed(2)}% of ||theirs - start||, max |ours - theirs| ${d.max.toExponential(2)}`);
        assert.ok(d.rel <= WEIGHT_BOUND, `${what}: ${d.rel}`);
      }
    });
    assert.strictEqual(torch.memory().tensors, before);
    fs.rmSync(out, { recursive: true, force: true });
    model.dispose();
  });

  it('save() writes opt{N}.pt in their use_fp16 layout (AdamW over their two flat masters), which torch takes and ours resumes unchanged', () => {
    const model = net();
    const dirs = [fs.mkdtempSync(path.join(os.tmpdir(), 'gd-fp16-opt-')), fs.mkdtempSync(path.join(os.tmpdir(), 'gd-fp16-opt-'))];
    try {
      torch.tidy(() => {
        const diffusion = openai.createGaussianDiffusion(model, { learn_sigma: true, image_size: fixture.net.image_size });
        const flags = { ...fixture.flags, resume_checkpoint: path.join(DIR, 'start.pt') };
        const loop = new openai.TrainLoop(diffusion, flags);
        const y = torch.tensor(fixture.y, { dtype: 'int64' });
        (fixture.steps as { t: number[]; weights: number[] }[]).slice(0, 3).forEach((s, k) => {
          loop.runStep(tensorOf('batch'), { y, t: torch.tensor(s.t, { dtype: 'int64' }), weights: torch.tensor(s.weights), noise: tensorOf(`noise${k}`) });
        });
        assert.deepStrictEqual(loop.save(dirs[0]).map((f) => path.basename(f)), ['model000003.pt', 'ema_0.9_000003.pt', 'opt000003.pt']);
        // Resumed (masters, EMA and AdamW's state from the files) and saved again: the same bytes.
        const again = new openai.TrainLoop(diffusion, { ...flags, resume_checkpoint: path.join(dirs[0], 'model000003.pt') });
        again.save(dirs[1]);
        for (const f of ['model000003.pt', 'ema_0.9_000003.pt', 'opt000003.pt']) {
          assert.ok(fs.readFileSync(path.join(dirs[0], f)).equals(fs.readFileSync(path.join(dirs[1], f))), f);
        }
      });
      // Their make_master_params: the parameters of ndim <= 1 flattened to (-1), the others to (1, -1).
      const script = `
import sys, torch
d = sys.argv[1]
m = torch.load(d + "/model000003.pt", weights_only=True)
o = torch.load(d + "/opt000003.pt", weights_only=True)
groups = [[t for t in m.values() if t.ndim <= 1], [t for t in m.values() if t.ndim > 1]]
masters = [torch.nn.Parameter(torch.cat([t.reshape(-1) for t in groups[0]])),
           torch.nn.Parameter(torch.cat([t.reshape(-1) for t in groups[1]]).view(1, -1))]
opt = torch.optim.AdamW(masters, lr=1)
opt.load_state_dict(o)
print(len(o["state"]), [tuple(opt.state[p]["exp_avg"].shape) == tuple(p.shape) for p in masters],
      [float(opt.state[p]["step"]) for p in masters], opt.param_groups[0]["lr"], opt.param_groups[0]["weight_decay"])
`;
      const r = spawnSync(testPython(), ['-c', script, dirs[0]], { encoding: 'utf8' });
      assert.strictEqual(r.status, 0, r.stderr);
      // Two of the three steps were taken (the second overflowed).
      assert.strictEqual(r.stdout.trim(), '2 [True, True] [2.0, 2.0] 0.001 0.05');
      console.log(`      torch.load + AdamW(their two flat masters).load_state_dict: ${r.stdout.trim()}`);
    } finally {
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
      model.dispose();
    }
  });
});
