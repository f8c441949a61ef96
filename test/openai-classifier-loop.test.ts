// ClassifierTrainLoop.runLoop (native/diffusion/openai_classifier_loop.cc): classifier_train.py's
// main loop off the JS thread. Its logs, val passes and saves come at the steps of their loop
// (worked out here from their control flow), also after resume_checkpoint; a noised
// EncoderUNetModel's loss falls on Fashion-MNIST; an AbortSignal stops the run after its
// current step; bad options are named.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadFashionMnist, openai, readStateDict, torch, Tensor } from '../lib';
import { collectedMemory, testPython } from './helpers';

// Their `for step in range(iterations - resume_step)` body, for the numbers only: which steps
// dump the logger (logging step + resume_step), which run a val batch, which save_model (and
// the save after the loop, with the loop variable's last value).
function theirSchedule(iterations: number, resume: number, log: number, evalEvery: number, save: number): { dumps: number[]; evals: number[]; saves: number[] } {
  const dumps: number[] = [], evals: number[] = [], saves: number[] = [];
  let step = 0;
  for (step = 0; step < iterations - resume; step++) {
    if (step % evalEvery === 0) evals.push(step + resume);
    if (step % log === 0) dumps.push(step + resume);
    if (step !== 0 && (step + resume) % save === 0) saves.push(step + resume);
  }
  saves.push(step - 1 + resume);
  return { dumps, evals, saves };
}

const NET = { image_size: 8, in_channels: 3, model_channels: 32, out_channels: 10, num_res_blocks: 1, attention_resolutions: [], channel_mult: [1], pool: 'adaptive' as const };

describe('openai ClassifierTrainLoop.runLoop (classifier_train.py main loop)', () => {
  let tmp: string;
  let data: Tensor, labels: Tensor, evalData: Tensor, evalLabels: Tensor;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-classifier-loop-'));
    torch.manualSeed(3);
    data = torch.rand([8, 3, 8, 8]).mul(2).sub(1);
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7], { dtype: 'int64' });
    evalData = torch.rand([4, 3, 8, 8]).mul(2).sub(1);
    evalLabels = torch.tensor([9, 8, 7, 6], { dtype: 'int64' });
  });
  after(() => {
    torch.dispose([data, labels, evalData, evalLabels]);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('logs, val passes and saves at their steps; a resumed run continues at the saved step with its weights and AdamW, as theirs', async () => {
    const start = (await collectedMemory()).tensors;
    // The loops hold their trainers' tensors (AdamW's moments) until they are collected.
    await (async () => {
      const dir = path.join(tmp, 'numbers');
      const flags = { lr: 1e-3, batch_size: 4, iterations: 7, anneal_lr: true, log_interval: 2, eval_interval: 3, save_interval: 3, seed: 2 };
      const net = new openai.EncoderUNetModel(NET);
      const loop = new openai.ClassifierTrainLoop(net, { diffusion_steps: 100 }, flags);
      const logs: Record<string, number>[] = [];
      const saves: number[] = [];
      const r = await loop.runLoop({ data, labels, evalData, evalLabels, outDir: dir, onLog: (l) => logs.push(l), onSave: (s) => saves.push(s.step) });
      const want = theirSchedule(7, 0, 2, 3, 3);
      // Theirs writes the last checkpoint twice where the last step saved (6 here); we write it once.
      assert.deepStrictEqual(want.saves, [3, 6, 6]);
      assert.deepStrictEqual(r, { stepsRun: 7, step: 7, resumeStep: 0, saved: [3, 6] });
      assert.deepStrictEqual(saves, [3, 6]);
      assert.deepStrictEqual(logs.map((l) => l.step), want.dumps);
      assert.deepStrictEqual(logs.map((l) => l.samples), want.dumps.map((s) => (s + 1) * 4));
      // A dump holds val keys where a val pass ran since the previous dump.
      const withVal = want.dumps.map((d, i) => want.evals.some((e) => e <= d && (i === 0 || e > want.dumps[i - 1])));
      assert.deepStrictEqual(logs.map((l) => 'val_loss' in l), withVal);
      assert.deepStrictEqual(Object.keys(logs[0]).filter((k) => !/_q\d$/.test(k)).sort(),
        ['grad_norm', 'param_norm', 'samples', 'step', 'train_acc@1', 'train_acc@5', 'train_loss', 'val_acc@1', 'val_acc@5', 'val_loss']);
      assert.deepStrictEqual(fs.readdirSync(dir).sort(), ['model000003.pt', 'model000006.pt', 'opt000003.pt', 'opt000006.pt']);
      console.log(`      iterations 7, log 2, eval 3, save 3: dumps at ${logs.map((l) => l.step).join(', ')} (val keys: ${withVal.join(', ')}), saved ${r.saved.join(', ')}`);

      // resume_checkpoint model000003.pt: its weights, the step 3 (their loop redoes step 3, as theirs).
      const fresh = new openai.EncoderUNetModel(NET);
      const resumed = new openai.ClassifierTrainLoop(fresh, { diffusion_steps: 100 }, { ...flags, resume_checkpoint: path.join(dir, 'model000003.pt') });
      const saved = readStateDict(path.join(dir, 'model000003.pt'));
      const now = fresh.stateDict();
      let worst = 0;
      for (const k of Object.keys(saved)) worst = Math.max(worst, now[k].sub(saved[k]).abs().max().item() as number);
      assert.strictEqual(worst, 0);
      torch.dispose([...Object.values(saved), ...Object.values(now)]);
      assert.strictEqual(resumed.resumeStep, 3);
      const logs2: Record<string, number>[] = [];
      const r2 = await resumed.runLoop({ data, labels, evalData, evalLabels, outDir: dir, onLog: (l) => logs2.push(l) });
      const want2 = theirSchedule(7, 3, 2, 3, 3);
      assert.deepStrictEqual(want2.saves, [6, 6]);
      assert.deepStrictEqual(r2, { stepsRun: 4, step: 4, resumeStep: 3, saved: [6] });
      assert.deepStrictEqual(logs2.map((l) => l.step), want2.dumps);
      assert.deepStrictEqual(logs2.map((l) => 'val_loss' in l), want2.dumps.map((d, i) => want2.evals.some((e) => e <= d && (i === 0 || e > want2.dumps[i - 1]))));
      // AdamW went on from opt000003.pt (4 steps) for 4 more; anneal_lr's last lr is 1e-3 * (1 - 6/7).
      const script = 'import sys, torch\no = torch.load(sys.argv[1], weights_only=True)\nprint(float(o["state"][0]["step"]), repr(o["param_groups"][0]["lr"]))';
      const py = spawnSync(testPython(), ['-c', script, path.join(dir, 'opt000006.pt')], { encoding: 'utf8' });
      assert.strictEqual(py.status, 0, py.stderr);
      assert.deepStrictEqual(py.stdout.trim().split(' ').map(Number), [8, 1e-3 * (1 - 6 / 7)]);
      console.log(`      resumed from model000003.pt: dumps at ${logs2.map((l) => l.step).join(', ')}, saved ${r2.saved.join(', ')}; opt000006.pt (torch.load): step, lr = ${py.stdout.trim()}`);
    net.dispose();
      fresh.dispose();
    })();
    assert.strictEqual((await collectedMemory()).tensors, start);
  });

  it('the diffusion flags give the schedule of a UNet-built diffusion: the same step', () => {
    torch.tidy(() => {
      const x = data.narrow(0, 0, 4), y = labels.narrow(0, 0, 4);
      const t = torch.tensor([0, 30, 60, 99], { dtype: 'int64' });
      const noise = torch.randn([4, 3, 8, 8]);
      torch.manualSeed(1);
      const fromFlags = new openai.ClassifierTrainLoop(new openai.EncoderUNetModel(NET), { diffusion_steps: 100, noise_schedule: 'cosine' }).runStep(x, y, { t, noise });
      torch.manualSeed(0);
      const { diffusion } = openai.createModelAndDiffusion({ image_size: 8, num_channels: 32, num_res_blocks: 1, channel_mult: '1', attention_resolutions: '16', diffusion_steps: 100, noise_schedule: 'cosine' });
      torch.manualSeed(1);
      const fromUnet = new openai.ClassifierTrainLoop(new openai.EncoderUNetModel(NET), diffusion).runStep(x, y, { t, noise });
      assert.deepStrictEqual(fromFlags, fromUnet);
      console.log(`      cosine 100 steps: the same ${Object.keys(fromFlags).length} logged keys either way, grad_norm ${fromFlags.grad_norm.toFixed(6)}`);
    });
  });

  // Unnoised (their --noised False): on this project's shared 2-core runners a noised classifier
  // needs far more steps than a test can take before its loss moves off ln(10).
  it('trains an EncoderUNetModel on Fashion-MNIST (noised false): the train and val losses fall; the JS thread stays free', async () => {
    const start = (await collectedMemory()).tensors;
    await (async () => {
      const fm = loadFashionMnist({ limit: 512 });
      const val = loadFashionMnist({ train: false, limit: 128 });
      torch.manualSeed(4);
      const net = new openai.EncoderUNetModel({ image_size: 28, in_channels: 1, model_channels: 32, out_channels: 10, num_res_blocks: 1, attention_resolutions: [], channel_mult: [1, 2], pool: 'adaptive' });
      const loop = new openai.ClassifierTrainLoop(net, { diffusion_steps: 1000 }, { lr: 1e-3, batch_size: 32, iterations: 40, noised: false, seed: 4, log_interval: 10, eval_interval: 10 });
      const logs: Record<string, number>[] = [];
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      const started = Date.now();
      const r = await loop.runLoop({ data: fm.images, labels: fm.labels, evalData: val.images, evalLabels: val.labels, onLog: (l) => logs.push(l) });
      clearInterval(timer);
      const ms = Date.now() - started;
      assert.deepStrictEqual(r, { stepsRun: 40, step: 40, resumeStep: 0, saved: [] });
      assert.deepStrictEqual(logs.map((l) => l.step), [0, 10, 20, 30]);
      const first = logs[0], last = logs[logs.length - 1];
      console.log(`      40 steps of batch 32 in ${ms} ms, JS timer ticked ${ticks} times; train_loss ${first.train_loss.toFixed(4)} (step 0) -> ${last.train_loss.toFixed(4)} (steps 21-30); ` +
        `val_loss ${first.val_loss.toFixed(4)} -> ${last.val_loss.toFixed(4)}; val_acc@1 ${first['val_acc@1'].toFixed(3)} -> ${last['val_acc@1'].toFixed(3)}`);
      assert.ok(last.train_loss < first.train_loss - 0.1, `${first.train_loss} -> ${last.train_loss}`);
      assert.ok(last.val_loss < first.val_loss - 0.1, `${first.val_loss} -> ${last.val_loss}`);
      assert.ok(ticks > 10, 'the JS thread ran timers while training');
      torch.dispose([fm.images, fm.labels, val.images, val.labels]);
    net.dispose();
    })();
    assert.strictEqual((await collectedMemory()).tensors, start);
  });

  it('an AbortSignal stops the run after its current step (no end save); the loop refuses other calls while it runs; bad options are named', async () => {
    const dir = path.join(tmp, 'abort');
    const net = new openai.EncoderUNetModel(NET);
    const loop = new openai.ClassifierTrainLoop(net, { diffusion_steps: 100 }, { batch_size: 4 });
    const ac = new AbortController();
    let seen = 0;
    const run = loop.runLoop({ data, labels, logInterval: 1, outDir: dir, signal: ac.signal, onLog: () => (++seen === 3 ? ac.abort() : undefined) });
    assert.throws(() => loop.runStep(data, labels), /ClassifierTrainLoop\.runStep: a runLoop of this ClassifierTrainLoop is running/);
    await assert.rejects(run, (e: Error) => e.name === 'AbortError' && /training was aborted/.test(e.message));
    console.log(`      aborted in the 3rd onLog: the run stopped after step ${loop.step}, ${seen} logs, files ${JSON.stringify(fs.readdirSync(dir))}`);
    assert.ok(loop.step >= 3, String(loop.step));
    assert.strictEqual(seen, loop.step);
    assert.deepStrictEqual(fs.readdirSync(dir), []);
    const cases: [object, RegExp][] = [
      [{ data, labels, stepz: 2 }, /runLoop: unknown option 'stepz'/],
      [{ data }, /runLoop: options\.labels must be a Tensor \(int64 class labels \[N\]\)/],
      [{ data, labels, evalData }, /runLoop: evalData and evalLabels go together/],
      [{ data, labels, steps: -1 }, /runLoop: steps must be an integer >= 0; got -1/],
      [{ data, labels, evalInterval: 0 }, /runLoop: evalInterval must be an integer >= 1; got 0/],
      [{ data: data.narrow(0, 0, 2), labels: labels.narrow(0, 0, 2) }, /batch_size must be in \[1, 2\] \(the images in data\); got 4/],
      [{ data, labels: labels.narrow(0, 0, 3) }, /labels must be int64 \[N\] with one label per image of data \(8\)/],
      [{ data, labels, evalData: evalData.narrow(0, 0, 2), evalLabels: evalLabels.narrow(0, 0, 2) }, /batch_size must be in \[1, 2\] \(the images in evalData\); got 4/],
    ];
    for (const [o, want] of cases) await assert.rejects(loop.runLoop({ steps: 1, ...o } as never), want);
    assert.throws(() => new openai.ClassifierTrainLoop(net, { diffusion_steps: 100 }, { eval_interval: 0 }), /eval_interval must be >= 1; got 0/);
    assert.throws(() => new openai.ClassifierTrainLoop(net, { diffusion_steps: 100 }, { resume_checkpoint: path.join(tmp, 'none', 'model000005.pt') }), /resume_checkpoint: .*model000005\.pt/);
    const r = await loop.runLoop({ data, labels, steps: 2 });
    assert.strictEqual(r.stepsRun, 2);
    net.dispose();
  });
});
