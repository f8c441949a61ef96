// openai's TrainLoop data-parallel (their DDP) over Gloo on this machine: 2 ranks of batch 2,
// one step, give the weights, EMA and logged grad_norm of one process of batch 4 over the same
// images, timesteps, weights and noise (worked out here); and `train --openai --nproc-per-node 2`
// trains each rank on its shard and writes rank 0's checkpoints only, which load.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openai, torch } from '../lib';
import { CLASSIFIER_FLAGS, ClassifierStepReport, OPENAI_FLAGS, openaiClassifierStep, openaiStep, OpenaiStepReport } from './distributed/openai-step';
import { runRanks } from './distributed/ranks';
import { collectedMemory, maxAbsDiff, printMeasured, writeFashionMnistPngs } from './helpers';

const CLI = path.resolve(__dirname, '..', 'lib', 'cli.js');
const TOL = 1e-6;

function maxParamDiff(a: Record<string, number[]>, b: Record<string, number[]>): number {
  assert.deepStrictEqual(Object.keys(a), Object.keys(b));
  return Math.max(...Object.keys(a).map((k) => maxAbsDiff(a[k], b[k])));
}

describe('openai TrainLoop data-parallel (gloo, loopback)', function () {
  this.timeout(300000);
  let threads: number;
  let tmp: string;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);  // as each rank
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-openai-ddp-'));
  });
  after(() => {
    torch.setNumThreads(threads);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('2 ranks of batch 2 take the step of one process of batch 4 (weights, EMA, grad_norm within 1e-6)', async () => {
    const out = await runRanks<OpenaiStepReport>(2, 'openai-step', { batch: 2, initSeed: 30 }, { limitMs: 240000 });
    for (const o of out) assert.strictEqual(o.code, 0, o.stderr);
    const [r0, r1] = out.map((o) => o.result!);
    // Rank 1 built its model from another seed: the first step starts from rank 0's weights, so
    // both ranks end alike, bit for bit.
    assert.strictEqual(maxParamDiff(r1.params, r0.params), 0, 'rank 1 weights differ from rank 0\'s');
    assert.strictEqual(maxParamDiff(r1.ema, r0.ema), 0, 'rank 1 EMA differs from rank 0\'s');
    assert.strictEqual(r0.log.grad_norm, r1.log.grad_norm);
    // Their global_batch: samples counts both ranks' images.
    assert.strictEqual(r0.log.samples, 4);
    // Theirs all-gathers the loss-second-moment sampler's losses; ours refuses it, naming it.
    for (const r of [r0, r1]) assert.match(r.refused!, /schedule_sampler loss-second-moment is not supported with data-parallel training yet .*; use uniform/);

    const before = torch.memory().tensors;
    const whole = openaiStep({ from: 0, count: 4, initSeed: 30, distributed: false });
    const half = openaiStep({ from: 0, count: 2, initSeed: 30, distributed: false });
    assert.strictEqual(torch.memory().tensors, before);
    const weights = maxParamDiff(r0.params, whole.params);
    const ema = maxParamDiff(r0.ema, whole.ema);
    const gradNorm = Math.abs(r0.log.grad_norm - whole.log.grad_norm) / whole.log.grad_norm;
    printMeasured('2 ranks x batch 2 vs 1 process x batch 4, one step: max |difference| of the weights', weights, TOL);
    printMeasured('the same, of the EMA', ema, TOL);
    printMeasured(`the same, relative difference of grad_norm (${whole.log.grad_norm.toFixed(5)})`, gradNorm, TOL);
    assert.ok(weights <= TOL && ema <= TOL && gradNorm <= TOL, JSON.stringify({ weights, ema, gradNorm }));
    // Not a vacuous match: rank 0's batch alone, without the average, steps elsewhere.
    const alone = maxParamDiff(half.params, whole.params);
    printMeasured('rank 0\'s batch of 2 without averaging vs batch 4: max |difference| of the weights', alone);
    assert.ok(alone > 1e-4, `${alone}`);
  });

  it('distributed needs a boolean and an initialized process group, named in the errors', () => {
    const model = openai.createModel(OPENAI_FLAGS);
    try {
      const diffusion = openai.createGaussianDiffusion(model, OPENAI_FLAGS);
      assert.throws(() => new openai.TrainLoop(diffusion, { distributed: 'yes' as unknown as boolean }), /^TypeError: distributed must be a boolean; got yes$/);
      assert.throws(() => new openai.TrainLoop(diffusion, { distributed: true }), /TrainLoop with distributed: true: the default process group is not initialized; call initProcessGroup\(\) first/);
    } finally {
      model.dispose();
    }
  });

  it('train --openai --nproc-per-node 2 shards the images, and rank 0 alone logs and writes checkpoints that load', async () => {
    const data = path.join(tmp, 'images');
    fs.mkdirSync(data);
    await writeFashionMnistPngs(16, () => data);
    const outDir = path.join(tmp, 'ckpts');
    const flags = '--image_size 8 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2 --attention_resolutions 4 --learn_sigma True --diffusion_steps 50 --lr 1e-3 --batch_size 2 --log_interval 1 --save_interval 2';
    const r = spawnSync(process.execPath, [CLI, 'train', '--openai', flags, '--data-dir', data, '--out-dir', outDir, '--steps', '3', '--seed', '3', '--nproc-per-node', '2'],
      { encoding: 'utf8', env: { ...process.env, OPENAI_LOGDIR: '' }, timeout: 240000 });
    assert.strictEqual(r.status, 0, r.stderr);
    console.log(r.stderr.trim().split('\n').map((l) => `      ${l}`).join('\n'));
    // One report (rank 0's): the images line once, logs of steps 0, 1, 2 once each, samples of both ranks.
    assert.strictEqual(r.stderr.match(/^16 images of 8x8 from .*, rank r training on images r, r \+ 2, \.\.\. \(of 2 ranks\)$/gm)?.length, 1, r.stderr);
    for (const s of [0, 1, 2]) assert.strictEqual(r.stderr.match(new RegExp(`^step ${s} \\|.*\\| samples ${(s + 1) * 4} \\|`, 'gm'))?.length, 1, r.stderr);
    // Their saves: after step 0 and step 2 (save_interval 2); the last step saved, so no end save.
    assert.strictEqual(r.stderr.match(/^trained 3 steps, to step 3; checkpoints 000000, 000002 in /gm)?.length, 1, r.stderr);
    assert.strictEqual(r.stderr.match(/^saved .*model000002\.pt/gm)?.length, 1, r.stderr);
    const names = ['model', 'ema_0.9999_', 'opt'].flatMap((p) => ['000000', '000002'].map((n) => `${p}${n}.pt`)).sort();
    assert.deepStrictEqual(fs.readdirSync(outDir).sort(), names);
    // They load: a fresh TrainLoop resumes from them at step 2 (weights, optimizer, EMA).
    const before = (await collectedMemory()).tensors;
    const resumed = (): number => {
      const unconditional = { ...OPENAI_FLAGS, class_cond: false };
      const model = openai.createModel(unconditional);
      const loop = new openai.TrainLoop(openai.createGaussianDiffusion(model, unconditional), { resume_checkpoint: path.join(outDir, 'model000002.pt') });
      assert.strictEqual(loop.resumeStep, 2);
      const p = model.namedParameters();
      const norm = Math.sqrt(Object.values(p).reduce((a, t) => a + (t.pow(2).sum().item() as number), 0));
      console.log(`      resumed from model000002.pt: step ${loop.resumeStep}, ${Object.keys(p).length} tensors, weight norm ${norm.toFixed(4)}`);
      for (const t of Object.values(p)) t.dispose();
      model.dispose();
      return norm;
    };
    const norm = torch.tidy(resumed);
    assert.ok(Number.isFinite(norm) && norm > 0);
    // The TrainLoop's optimizer and EMA go with it to the garbage collector.
    assert.strictEqual((await collectedMemory()).tensors, before);
  });

  it('ClassifierTrainLoop: 2 ranks of batch 2 take the step of one process of batch 4 (grad_norm within 1e-6, weights within 1e-3 of what averaging changes)', async () => {
    const out = await runRanks<ClassifierStepReport>(2, 'openai-classifier-step', { batch: 2, initSeed: 40 }, { limitMs: 240000 });
    for (const o of out) assert.strictEqual(o.code, 0, o.stderr);
    const [r0, r1] = out.map((o) => o.result!);
    // Rank 1 built its classifier from another seed: the step starts from rank 0's weights.
    assert.strictEqual(maxParamDiff(r1.params, r0.params), 0, 'rank 1 weights differ from rank 0\'s');
    assert.strictEqual(r0.log.grad_norm, r1.log.grad_norm);
    assert.strictEqual(r0.log.samples, 4);
    const before = torch.memory().tensors;
    const whole = openaiClassifierStep({ from: 0, count: 4, initSeed: 40, distributed: false });
    const half = openaiClassifierStep({ from: 0, count: 2, initSeed: 40, distributed: false });
    assert.strictEqual(torch.memory().tensors, before);
    const gradNorm = Math.abs(r0.log.grad_norm - whole.log.grad_norm) / whole.log.grad_norm;
    printMeasured(`classifier, 2 ranks x batch 2 vs 1 process x batch 4, one step: relative difference of grad_norm (${whole.log.grad_norm.toFixed(5)})`, gradNorm, TOL);
    // AdamW's first step moves each weight by about lr times its gradient's sign, so the few
    // weights whose gradient over the 4 images cancels down to float rounding (75 of 1.5 million
    // here) step differently for sums in another order: the weights are compared as a whole,
    // against how far rank 0's batch alone, without the average, steps from batch 4's.
    let num = 0, den = 0, apart = 0, max = 0;
    for (const k of Object.keys(whole.params)) {
      whole.params[k].forEach((v, i) => {
        const d = Math.abs(v - r0.params[k][i]);
        num += d * d;
        den += (v - half.params[k][i]) ** 2;
        max = Math.max(max, d);
        if (d > 1e-6) apart++;
      });
    }
    const rel = Math.sqrt(num / den);
    printMeasured(`the same, ||ranks - batch 4|| / ||batch 2 alone - batch 4|| of the weights (max |difference| ${max.toExponential(2)}, ${apart} weights apart by > 1e-6)`, rel, 1e-3);
    assert.ok(gradNorm <= TOL && rel <= 1e-3, JSON.stringify({ gradNorm, rel }));
    const classifier = openai.createClassifier(CLASSIFIER_FLAGS);
    try {
      assert.throws(() => new openai.ClassifierTrainLoop(classifier, { diffusion_steps: 50 }, { distributed: 1 as unknown as boolean }), /^TypeError: distributed must be a boolean; got 1$/);
      assert.throws(() => new openai.ClassifierTrainLoop(classifier, { diffusion_steps: 50 }, { distributed: true }), /ClassifierTrainLoop with distributed: true: the default process group is not initialized; call initProcessGroup\(\) first/);
    } finally {
      classifier.dispose();
    }
  });

  it('train-classifier --nproc-per-node 2 shards the images, and rank 0 alone logs and writes checkpoints that load', () => {
    const data = path.join(tmp, 'classifier-images');
    fs.mkdirSync(data);
    return writeFashionMnistPngs(16, () => data).then(() => {
      const outDir = path.join(tmp, 'classifier-ckpts');
      const flags = '--image_size 8 --classifier_channel_mult 1,2 --classifier_width 64 --classifier_depth 1 --classifier_attention_resolutions 1 --classifier_pool adaptive --iterations 3 --lr 1e-3 --batch_size 2 --log_interval 1 --save_interval 2 --diffusion_steps 50';
      const r = spawnSync(process.execPath, [CLI, 'train-classifier', '--openai', flags, '--data-dir', data, '--out-dir', outDir, '--seed', '3', '--nproc-per-node', '2'],
        { encoding: 'utf8', env: { ...process.env, OPENAI_LOGDIR: '' }, timeout: 240000 });
      assert.strictEqual(r.status, 0, r.stderr);
      console.log(r.stderr.trim().split('\n').map((l) => `      ${l}`).join('\n'));
      assert.strictEqual(r.stderr.match(/^16 images of 8x8, \d+ classes from .*, rank r training on images r, r \+ 2, \.\.\. \(of 2 ranks\)$/gm)?.length, 1, r.stderr);
      for (const s of [0, 1, 2]) assert.strictEqual(r.stderr.match(new RegExp(`^step ${s} \\|.*\\| samples ${(s + 1) * 4} \\|`, 'gm'))?.length, 1, r.stderr);
      // Their save_model at step 2 (save_interval 2, not at step 0), which is the last: once.
      assert.strictEqual(r.stderr.match(/^trained 3 steps, to step 3; checkpoints 000002 in /gm)?.length, 1, r.stderr);
      assert.deepStrictEqual(fs.readdirSync(outDir).sort(), ['model000002.pt', 'opt000002.pt']);
      torch.tidy(() => {
        const classifier = openai.createClassifier(CLASSIFIER_FLAGS);
        const loop = new openai.ClassifierTrainLoop(classifier, { diffusion_steps: 50 }, { resume_checkpoint: path.join(outDir, 'model000002.pt') });
        assert.strictEqual(loop.resumeStep, 2);
        classifier.dispose();
      });
    });
  });
});
