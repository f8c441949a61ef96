// TrainLoop.runLoop (native/diffusion/openai_train_loop.cc): their run_loop off the JS thread.
// On Fashion-MNIST (Debian's IDX files) a reduced openai UNetModel's loss falls over 40 steps;
// saves come at their steps (self.step % save_interval == 0, and at the end), lr_anneal_steps
// ends the run, a resumed run continues from the saved step as theirs does; logs are their
// dumpkvs (means since the last dump); an AbortSignal stops the run after its current step.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { jit, loadFashionMnist, openai, torch } from '../lib';
import { FIXTURES } from './helpers';

const NET = path.join(FIXTURES, 'openai-training', 'train_unet.pt');

describe('openai TrainLoop.runLoop', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-openai-loop-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('trains a reduced UNetModel on Fashion-MNIST: the loss falls over 40 steps; saves at their steps; the JS thread stays free', async () => {
    const before = torch.memory().tensors;
    const fm = loadFashionMnist({ limit: 512 });
    const net = new openai.UNetModel({ image_size: 28, in_channels: 1, model_channels: 32, out_channels: 1, num_res_blocks: 1, attention_resolutions: [], channel_mult: [1, 2] });
    const loop = new openai.TrainLoop(openai.createGaussianDiffusion(net, { image_size: 28, diffusion_steps: 1000 }), { lr: 1e-3, batch_size: 16, seed: 1, save_interval: 15 });
    const logs: Record<string, number>[] = [];
    const saves: { step: number; files: string[] }[] = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = Date.now();
    const r = await loop.runLoop({ data: fm.images, steps: 40, logInterval: 1, outDir: tmp, onLog: (l) => logs.push(l), onSave: (s) => saves.push(s) });
    clearInterval(timer);
    const ms = Date.now() - started;
    assert.deepStrictEqual(r, { stepsRun: 40, step: 40, resumeStep: 0, saved: [0, 15, 30, 40] });
    assert.deepStrictEqual(saves.map((s) => s.step), [0, 15, 30, 40]);
    assert.deepStrictEqual(saves[3].files.map((f) => path.basename(f)), ['model000040.pt', 'ema_0.9999_000040.pt', 'opt000040.pt']);
    for (const n of ['000000', '000015', '000030', '000040']) assert.ok(fs.existsSync(path.join(tmp, `model${n}.pt`)), n);
    assert.strictEqual(logs.length, 40);
    assert.deepStrictEqual(logs.map((l) => l.step), Array.from({ length: 40 }, (_, i) => i));
    assert.deepStrictEqual(Object.keys(logs[0]).filter((k) => !/_q\d$/.test(k)).sort(), ['grad_norm', 'loss', 'mse', 'param_norm', 'samples', 'step']);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(logs.slice(0, 5).map((l) => l.loss));
    const last = mean(logs.slice(-5).map((l) => l.loss));
    console.log(`      40 steps of batch 16 in ${ms} ms (${(ms / 40).toFixed(0)} ms/step), JS timer ticked ${ticks} times; loss of the first 5 steps ${first.toFixed(4)}, last 5 ${last.toFixed(4)}; saved ${r.saved.join(', ')}`);
    assert.ok(last < 0.5 * first, `${first} -> ${last}`);
    assert.ok(ticks > 10, 'the JS thread ran timers while training');
    fm.images.dispose();
    fm.labels.dispose();
    net.dispose();
    assert.strictEqual(torch.memory().tensors, before);
  });

  it('lr_anneal_steps ends the run; a run resumed from a saved step continues to it as theirs (their numbering: model{k} holds k + 1 steps)', async () => {
    const dir = path.join(tmp, 'anneal', 'made-by-runLoop');
    const data = torch.rand([8, 3, 8, 8]).mul(2).sub(1);
    const labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7]);
    const flags = { lr: 1e-3, batch_size: 4, lr_anneal_steps: 6, save_interval: 4, ema_rate: '0.9' };
    const a = jit.load(NET);
    const first = new openai.TrainLoop(openai.createGaussianDiffusion(a, { learn_sigma: true, image_size: 8 }), flags);
    const r1 = await first.runLoop({ data, labels, outDir: dir, logInterval: 1 });
    assert.deepStrictEqual(r1, { stepsRun: 6, step: 6, resumeStep: 0, saved: [0, 4, 6] });
    const b = jit.load(NET);
    const resumed = new openai.TrainLoop(openai.createGaussianDiffusion(b, { learn_sigma: true, image_size: 8 }), { ...flags, resume_checkpoint: path.join(dir, 'model000004.pt') });
    const steps: number[] = [];
    const r2 = await resumed.runLoop({ data, labels, outDir: dir, logInterval: 1, onLog: (l) => steps.push(l.step) });
    // Their loop: while step + resume_step < lr_anneal_steps; its first step logs (and saves as) 4.
    assert.deepStrictEqual(r2, { stepsRun: 2, step: 2, resumeStep: 4, saved: [4, 6] });
    assert.deepStrictEqual(steps, [4, 5]);
    const r3 = await new openai.TrainLoop(openai.createGaussianDiffusion(b, { learn_sigma: true, image_size: 8 }), { ...flags, resume_checkpoint: path.join(dir, 'model000006.pt') }).runLoop({ data, labels, outDir: dir });
    assert.deepStrictEqual(r3, { stepsRun: 0, step: 0, resumeStep: 6, saved: [6] });
    console.log(`      lr_anneal_steps 6, save_interval 4: saved ${r1.saved.join(', ')}; resumed from model000004.pt: steps logged ${steps.join(', ')}, saved ${r2.saved.join(', ')}`);
    [a, b, data, labels].forEach((x) => x.dispose());
  });

  it('logs are their dumpkvs: with logInterval 2, the means of the steps since the last dump', async () => {
    const data = torch.rand([8, 3, 8, 8]).mul(2).sub(1);
    const labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7]);
    const run = async (logInterval: number): Promise<Record<string, number>[]> => {
      const net = jit.load(NET);
      const logs: Record<string, number>[] = [];
      await new openai.TrainLoop(openai.createGaussianDiffusion(net, { learn_sigma: true, image_size: 8 }), { lr: 1e-3, batch_size: 4, seed: 5 })
        .runLoop({ data, labels, steps: 5, logInterval, onLog: (l) => logs.push(l) });
      net.dispose();
      return logs;
    };
    const each = await run(1);
    const pairs = await run(2);
    assert.deepStrictEqual(pairs.map((l) => l.step), [0, 2, 4]);
    let worst = 0;
    for (const key of ['loss', 'mse', 'vb', 'grad_norm', 'param_norm']) {
      const want = [each[0][key], (each[1][key] + each[2][key]) / 2, (each[3][key] + each[4][key]) / 2];
      pairs.forEach((l, i) => (worst = Math.max(worst, Math.abs(l[key] - want[i]))));
    }
    console.log(`      logInterval 2 vs the means of logInterval 1's pairs: max diff ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-12);
    data.dispose();
    labels.dispose();
  });

  it('an AbortSignal stops the run after its current step; the loop refuses other calls while it runs; bad options are named', async () => {
    const net = jit.load(NET);
    const data = torch.rand([8, 3, 8, 8]).mul(2).sub(1);
    const labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7]);
    const loop = new openai.TrainLoop(openai.createGaussianDiffusion(net, { learn_sigma: true, image_size: 8 }), { lr: 1e-3, batch_size: 4 });
    const ac = new AbortController();
    let seen = 0;
    const run = loop.runLoop({ data, labels, logInterval: 1, signal: ac.signal, onLog: () => (++seen === 3 ? ac.abort() : undefined) });
    assert.throws(() => loop.runStep(data, { y: labels }), /TrainLoop\.runStep: a runLoop of this TrainLoop is running/);
    await assert.rejects(run, (e: Error) => e.name === 'AbortError' && /training was aborted/.test(e.message));
    // The abort lands while the loop thread is in a later step: it stops after that one, and
    // every step taken was logged before the promise settled.
    console.log(`      aborted in the 3rd onLog: the run stopped after step ${loop.step}, ${seen} logs (no lr_anneal_steps or steps: it would run for ever)`);
    assert.ok(loop.step >= 3, String(loop.step));
    assert.strictEqual(seen, loop.step);
    await assert.rejects(loop.runLoop({ data, labels, steps: 1, stepz: 2 } as never), /runLoop: unknown option 'stepz'/);
    await assert.rejects(loop.runLoop({ data, labels, steps: -1 }), /runLoop: steps must be an integer >= 0; got -1/);
    await assert.rejects(loop.runLoop({ data: data.narrow(0, 0, 2), labels: labels.narrow(0, 0, 2), steps: 1 }), /batch_size must be in \[1, 2\] \(the images in data\); got 4/);
    await assert.rejects(loop.runLoop({ data, labels: labels.narrow(0, 0, 3), steps: 1 }), /labels must be int64 \[N\] with one label per image of data \(8\)/);
    const r = await loop.runLoop({ data, labels, steps: 2 });
    assert.strictEqual(r.stepsRun, 2);
    [net, data, labels].forEach((x) => x.dispose());
  });

  it('batches from an (async) iterable: taken in order, each once (the weights of runStep on the same batches), the run ending with them; a throwing iterable rejects the run with its error', async () => {
    const make = (k: number): { batch: ReturnType<typeof torch.rand>; y: ReturnType<typeof torch.tensor> } => {
      torch.manualSeed(50 + k);
      return { batch: torch.rand([4, 3, 8, 8]).mul(2).sub(1), y: torch.tensor([k % 10, 1, 2, 3]) };
    };
    const list = [0, 1, 2, 3, 4].map(make);
    const flags = { lr: 1e-3, batch_size: 4, seed: 9, save_interval: 3, ema_rate: '0.9' };
    const a = jit.load(NET);
    const viaLoop = new openai.TrainLoop(openai.createGaussianDiffusion(a, { learn_sigma: true, image_size: 8 }), flags);
    async function* gen(): AsyncGenerator<{ batch: ReturnType<typeof torch.rand>; y: ReturnType<typeof torch.tensor> }> {
      for (const b of list) {
        await new Promise((r) => setImmediate(r));
        yield b;
      }
    }
    const dir = path.join(tmp, 'batches');
    const r = await viaLoop.runLoop({ batches: gen(), outDir: dir, logInterval: 1 });
    assert.deepStrictEqual(r, { stepsRun: 5, step: 5, resumeStep: 0, saved: [0, 3, 5] });
    const b = jit.load(NET);
    const viaSteps = new openai.TrainLoop(openai.createGaussianDiffusion(b, { learn_sigma: true, image_size: 8 }), flags);
    for (const x of list) viaSteps.runStep(x.batch, { y: x.y });
    let worst = 0;
    torch.tidy(() => {
      const pa = a.namedParameters();
      const pb = b.namedParameters();
      for (const k of Object.keys(pa)) {
        const u = pa[k].data() as Float32Array;
        const v = pb[k].data() as Float32Array;
        for (let i = 0; i < u.length; i++) worst = Math.max(worst, Math.abs(u[i] - v[i]));
      }
    });
    console.log(`      5 batches from an async generator: the weights of 5 runStep calls on them within ${worst}; saved ${r.saved.join(', ')}`);
    assert.strictEqual(worst, 0);
    // A plain array is an iterable too; steps stops before it ends.
    const r2 = await viaSteps.runLoop({ batches: list, steps: 2 });
    assert.strictEqual(r2.stepsRun, 2);
    function* broken(): Generator<{ batch: ReturnType<typeof torch.rand>; y: ReturnType<typeof torch.tensor> }> {
      yield list[0];
      throw new Error('the data source broke');
    }
    await assert.rejects(viaSteps.runLoop({ batches: broken() }), /the data source broke/);
    await assert.rejects(viaSteps.runLoop({ batches: [{ batch: list[0].batch, label: list[0].y }] as never }), /runLoop: batch 0 of batches: unknown option 'label'/);
    await assert.rejects(viaSteps.runLoop({ batches: list, data: list[0].batch }), /runLoop: give either data \(a Tensor of images\) or batches/);
    [a, b].forEach((m) => m.dispose());
    list.forEach((x) => {
      x.batch.dispose();
      x.y.dispose();
    });
  });
});
