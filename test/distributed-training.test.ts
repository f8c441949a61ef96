// Data-parallel training over Gloo: N ranks of batch b take the steps one process of batch
// N*b takes with the same seed (the ranks draw the global batch and keep their slices), start
// from rank 0's weights, end with identical weights and EMA, and resume from rank 0's
// checkpoint at another world size.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { torch } from '../lib';
import { report, TrainReport, trainTiny } from './distributed/rank';
import { runRanks } from './distributed/ranks';
import { maxAbsDiff, printMeasured } from './helpers';

type Kind = 'diffusion' | 'classifier';

function maxParamDiff(a: Record<string, number[]>, b: Record<string, number[]>): number {
  assert.deepStrictEqual(Object.keys(a), Object.keys(b));
  return Math.max(...Object.keys(a).map((k) => maxAbsDiff(a[k], b[k])));
}

async function single(kind: Kind, batchSize: number, steps: number, extra: { checkpointPath?: string; resumeFrom?: string } = {}, numThreads = 1): Promise<TrainReport> {
  // One intra-op thread, as each rank has (unless asked otherwise).
  const threads = torch.getNumThreads();
  torch.setNumThreads(numThreads);
  try {
    return report(0, await trainTiny(kind, { batchSize, steps, distributed: false, initSeed: 100, ...extra }));
  } finally {
    torch.setNumThreads(threads);
  }
}

async function ranks(kind: Kind, n: number, batchSize: number, steps: number, extra: object = {}): Promise<TrainReport[]> {
  const out = await runRanks<TrainReport>(n, 'train', { kind, batchSize, steps, ...extra });
  for (const o of out) assert.strictEqual(o.code, 0, o.stderr);
  return out.map((o) => o.result!);
}

// How close "the same run" is: the float noise floor, which the test 'the noise floor' prints:
// one process of batch 4 training the diffusion case with 1 vs 2 intra-op threads (a different
// summation order, nothing else) ends 20 steps apart by about 5e-7 in the losses and 1e-5 in the
// weights (Adam normalises tiny gradients, so rounding differences grow to about 1e-5 of its
// steps). A slicing or averaging mistake moves the weights by 1e-3 and more.
const TOL = { loss: 1e-5, weights: 1e-4 };

function printDiffs(what: string, d: { loss: number; params: number; ema: number }): void {
  printMeasured(`${what}: max |difference| of the losses`, d.loss, TOL.loss);
  printMeasured(`${what}: max |difference| of the weights`, d.params, TOL.weights);
  printMeasured(`${what}: max |difference| of the EMA`, d.ema, TOL.weights);
}

function assertSameRun(parallel: TrainReport[], reference: TrainReport, what: string): { loss: number; params: number; ema: number } {
  for (const r of parallel.slice(1)) {
    // The ranks apply the same averaged gradients: bit-identical weights, EMA and losses.
    assert.strictEqual(maxParamDiff(r.params, parallel[0].params), 0, `rank ${r.rank} weights differ from rank 0's`);
    assert.strictEqual(maxParamDiff(r.ema, parallel[0].ema), 0, `rank ${r.rank} EMA differs from rank 0's`);
    assert.deepStrictEqual(r.losses, parallel[0].losses);
  }
  const d = {
    loss: maxAbsDiff(parallel[0].losses, reference.losses),
    params: maxParamDiff(parallel[0].params, reference.params),
    ema: maxParamDiff(parallel[0].ema, reference.ema),
  };
  printDiffs(what, d);
  assert.ok(d.loss <= TOL.loss && d.params <= TOL.weights && d.ema <= TOL.weights, `differences from one process: ${JSON.stringify(d)}`);
  return d;
}

describe('data-parallel training (gloo, loopback)', function () {
  this.timeout(120000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-ddp-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('2 ranks of batch 2 train a Unet as one process of batch 4 (20 steps)', async () => {
    const [parallel, reference] = await Promise.all([ranks('diffusion', 2, 2, 20), single('diffusion', 4, 20)]);
    assert.strictEqual(reference.losses.length, 20);
    assertSameRun(parallel, reference, '2 ranks x batch 2 vs 1 process x batch 4, Unet, 20 steps');
    // Not a vacuous match: training moved the weights away from rank 0's initial ones.
    const init = report(0, await trainTiny('diffusion', { batchSize: 4, steps: 0, distributed: false, initSeed: 100 }));
    const moved = maxParamDiff(init.params, reference.params);
    printMeasured('weights moved by training (max |difference| from the initial ones)', moved);
    assert.ok(moved > 1e-2);
    // Nor one that any batch would give: one process of batch 2 (rank 0's slice only) ends elsewhere.
    const half = await single('diffusion', 2, 20);
    const other = maxParamDiff(half.params, reference.params);
    printMeasured('1 process x batch 2 (rank 0\'s slice alone) vs batch 4: max |difference| of the weights', other);
    assert.ok(other > 1e-3);
  });

  it('3 ranks of batch 2 train a classifier as one process of batch 6 (20 steps)', async () => {
    const [parallel, reference] = await Promise.all([ranks('classifier', 3, 2, 20), single('classifier', 6, 20)]);
    assertSameRun(parallel, reference, '3 ranks x batch 2 vs 1 process x batch 6, classifier, 20 steps');
  });

  it('the noise floor: one process with 1 vs 2 intra-op threads, within the same bounds', async () => {
    const [one, two] = [await single('diffusion', 4, 20), await single('diffusion', 4, 20, {}, 2)];
    const d = { loss: maxAbsDiff(one.losses, two.losses), params: maxParamDiff(one.params, two.params), ema: maxParamDiff(one.ema, two.ema) };
    printDiffs('1 process x batch 4, 1 vs 2 threads, Unet, 20 steps', d);
    assert.ok(d.loss <= TOL.loss && d.params <= TOL.weights && d.ema <= TOL.weights, JSON.stringify(d));
  });

  it('only rank 0 writes the checkpoint, and a run resumes from it at another world size', async () => {
    const ckpt = path.join(tmp, 'ddp.pt');
    const straight = await single('diffusion', 4, 20);
    // 10 steps on 2 ranks of batch 2 (checkpoint by rank 0) ...
    await ranks('diffusion', 2, 2, 10, { checkpointPath: ckpt });
    assert.ok(fs.existsSync(ckpt) && fs.existsSync(`${ckpt}.state`));
    assert.deepStrictEqual(fs.readdirSync(tmp).sort(), ['ddp.pt', 'ddp.pt.state']);
    // ... then 10 more as one process of batch 4, and on 4 ranks of batch 1.
    const one = await single('diffusion', 4, 20, { resumeFrom: ckpt });
    assert.strictEqual(one.losses.length, 10);
    assertSameRun([one], { ...straight, losses: straight.losses.slice(10) }, 'resumed as 1 process x batch 4 vs straight');
    const four = await ranks('diffusion', 4, 1, 20, { resumeFrom: ckpt });
    assertSameRun(four, { ...straight, losses: straight.losses.slice(10) }, 'resumed on 4 ranks x batch 1 vs straight');
  });
});
