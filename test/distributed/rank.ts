// One rank of the distributed tests (test/distributed*.test.ts fork it, or `guided-diffusion
// launch` starts it): argv[2] names the scenario; the rank reads RANK, WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT (env://), does the scenario and reports its results to the
// parent (process.send) or, when launched, to a JSON file given in argv.
import * as fs from 'fs';
import * as path from 'path';
import { classifierGuidance, GaussianDiffusion, jit, Module, sampleDistributed, torch, trainClassifier, trainDiffusion, Unet, Classifier, TrainResult } from '../../lib';
import { REFERENCE } from '../helpers';
import { openaiClassifierStep, openaiRefusal, openaiStep } from './openai-step';

const dist = torch.distributed;

export interface TrainReport {
  rank: number;
  losses: number[];
  accuracies?: number;
  params: Record<string, number[]>;
  ema: Record<string, number[]>;
}

function flat(m: Record<string, torch.Tensor>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(m)) out[k] = Array.from(t.reshape(-1).to({ dtype: 'float64' }).data() as Float64Array);
  return out;
}

/** The tiny training problem shared by the ranks and the single-process reference. */
export function trainingSetup(kind: 'diffusion' | 'classifier', initSeed: number): {
  data: torch.Tensor; labels: torch.Tensor; model: Unet | Classifier;
} {
  torch.manualSeed(7);
  const data = torch.rand([24, 1, 8, 8]).mul(2).sub(1);
  const labels = torch.randint(0, 3, [24]);
  torch.manualSeed(initSeed);
  const model = kind === 'diffusion'
    ? new Unet({ dim: 8, dimMults: [1, 2], channels: 1 })
    : new Classifier({ imageSize: 8, channels: 1, numClasses: 3, dim: 8, dimMults: [1, 2], attentionResolutions: [], pool: 'avg' });
  return { data, labels, model };
}

export async function trainTiny(kind: 'diffusion' | 'classifier', opts: {
  batchSize: number; steps: number; distributed: boolean; initSeed: number; checkpointPath?: string; resumeFrom?: string;
  onStep?: (step: number) => void;
}): Promise<TrainResult> {
  const { data, labels, model } = trainingSetup(kind, opts.initSeed);
  const common = {
    data, steps: opts.steps, batchSize: opts.batchSize, lr: 3e-3, seed: 11, timesteps: 50, emaDecay: 0.9,
    distributed: opts.distributed, checkpointPath: opts.checkpointPath, resumeFrom: opts.resumeFrom,
    checkpointEvery: opts.checkpointPath ? 5 : undefined, onProgress: (p: { step: number }) => opts.onStep?.(p.step),
  };
  return kind === 'diffusion' ? trainDiffusion(model, common) : trainClassifier(model, { ...common, labels });
}

export function report(rank: number, r: TrainResult): TrainReport {
  return { rank, losses: Array.from(r.losses), accuracies: r.meanAccuracy, params: flat(r.model.namedParameters()), ema: flat(r.ema.namedParameters()) };
}

/**
 * The reference case's traced Unet and classifier (16x16, 20 steps) sampling `batch` guided
 * images; `steps` < 20 samples with DDIM.
 */
export function samplingSetup(steps: number): { diffusion: GaussianDiffusion; classifier: Module } {
  const model = jit.load(path.join(REFERENCE, 'unet_traced.pt'));
  const classifier = jit.load(path.join(REFERENCE, 'classifier.pt')).eval();
  const diffusion = new GaussianDiffusion(model, { imageSize: 16, timesteps: 20, samplingTimesteps: steps });
  return { diffusion, classifier };
}

export function guidedRequest(classifier: Module, batch: number): { batchSize: number; condFn: typeof classifierGuidance; guidanceKwargs: { classifier: Module; y: torch.Tensor; classifierScale: number } } {
  const y = torch.tensor(Array.from({ length: batch }, (_, i) => i % 3));
  return { batchSize: batch, condFn: classifierGuidance, guidanceKwargs: { classifier, y, classifierScale: 2 } };
}

async function collectives(): Promise<unknown> {
  const timeoutMs = 20000;
  await dist.initProcessGroup({ backend: 'gloo', timeoutMs });
  const rank = dist.getRank();
  const world = dist.getWorldSize();
  const second = await dist.initProcessGroup({ timeoutMs }).then(() => 'no error', (e: Error) => e.message);
  const sum = torch.tensor([rank + 1, 10 * (rank + 1), -rank], { dtype: 'float32' });
  await dist.allReduce(sum);
  const avg = torch.tensor([rank + 1, 2], { dtype: 'float64' });
  await dist.allReduce(avg, dist.ReduceOp.AVG);
  const max = torch.tensor([rank, -rank], { dtype: 'int64' });
  await dist.allReduce(max, 'max');
  const prod = torch.tensor([rank + 2], { dtype: 'int32' });
  await dist.allReduce(prod, 'product');
  const b = torch.full([2, 2], rank * 100 + 5);
  await dist.broadcast(b, world - 1);
  const gathered = await dist.allGather(torch.tensor([rank, rank * rank], { dtype: 'float32' }));
  // Several collectives in flight at once complete in call order on every rank.
  const many = Array.from({ length: 5 }, (_, i) => torch.full([3], rank + i));
  await Promise.all(many.map((t) => dist.allReduce(t)));
  await dist.barrier();
  const badOp = await dist.allReduce(torch.ones([1]), 'mean' as never).then(() => 'no error', (e: Error) => e.message);
  const badSrc = await dist.broadcast(torch.ones([1]), world).then(() => 'no error', (e: Error) => e.message);
  // 2**32 truncated to 32 bits was rank 0 (issue 21 C14).
  const hugeSrc = await dist.broadcast(torch.ones([1]), 2 ** 32).then(() => 'no error', (e: Error) => e.message);
  dist.destroyProcessGroup();
  const afterDestroy = (() => { try { dist.getRank(); return 'no error'; } catch (e) { return (e as Error).message; } })();
  return {
    rank, world, second, sum: sum.toArray(), avg: avg.toArray(), max: max.to('float64').toArray(), prod: prod.to('float64').toArray(), b: b.toArray(),
    gathered: gathered.map((t) => t.toArray()), many: many.map((t) => t.toArray()), badOp, badSrc, hugeSrc, afterDestroy,
  };
}

const errorOf = (p: Promise<unknown>): Promise<string> => p.then(() => 'no error', (e: Error) => e.message);

/** Ranks that disagree (issue 21 C10-C11): every one is an error on both ranks, never an abort or a wrong value. */
async function mismatches(): Promise<unknown> {
  await dist.initProcessGroup({ timeoutMs: 20000 });
  const rank = dist.getRank();
  const first = rank === 0;
  const shape = await errorOf(dist.allReduce(torch.ones([first ? 2 : 3])));
  const dtype = await errorOf(dist.allReduce(torch.ones([2], { dtype: first ? 'float32' : 'int32' })));
  const op = await errorOf(dist.allReduce(torch.ones([2]), first ? 'sum' : 'max'));
  const broadcastSize = await errorOf(dist.broadcast(torch.ones([first ? 2 : 100]), 0));
  const broadcastSrc = await errorOf(dist.broadcast(torch.ones([2]), first ? 0 : 1));
  const gather = await errorOf(dist.allGather(torch.ones([first ? 2 : 5])));
  const kind = await errorOf(first ? dist.barrier() : dist.allReduce(torch.ones([1])));
  // Nothing was sent, so the group is still in step: a matching collective is right.
  const after = torch.tensor([rank + 1], { dtype: 'float32' });
  await dist.allReduce(after);
  // Training: other Unets, other options.
  torch.manualSeed(7);
  const data = torch.rand([8, 1, 8, 8]).mul(2).sub(1);
  const train = (dim: number, batchSize: number) =>
    errorOf(trainDiffusion(new Unet({ dim, dimMults: [1, 2], channels: 1 }), { data, steps: 2, batchSize, timesteps: 50, distributed: true }));
  const trainModel = await train(first ? 8 : 16, 2);
  const trainBatch = await train(8, first ? 2 : 4);
  // Sampling: other batch sizes fail before any rank samples.
  const { diffusion, classifier } = samplingSetup(20);
  const t0 = Date.now();
  const sample = await errorOf(sampleDistributed(diffusion, { ...guidedRequest(classifier, first ? 4 : 6), seed: 1 }));
  const sampleMs = Date.now() - t0;
  dist.destroyProcessGroup();
  return { shape, dtype, op, broadcastSize, broadcastSrc, gather, kind, after: after.toArray(), trainModel, trainBatch, sample, sampleMs };
}

/** destroyProcessGroup while a collective waits for a peer (issue 21 C12): both at once. */
async function destroyPending(timeoutMs: number): Promise<unknown> {
  await dist.initProcessGroup({ timeoutMs });
  if (dist.getRank() === 1) {
    // The slow peer: never joins the collective, leaves after rank 0 has reported.
    await new Promise((r) => setTimeout(r, timeoutMs));
    return { idle: true };
  }
  const pending = errorOf(dist.allReduce(torch.ones([4])));
  const t0 = Date.now();
  dist.destroyProcessGroup();
  const destroyMs = Date.now() - t0;
  const error = await pending;
  const settledMs = Date.now() - t0;
  const afterwards = await errorOf(dist.allReduce(torch.ones([1])));
  return { destroyMs, error, settledMs, afterwards };
}

/** A master that accepts the connection and never answers (issue 21 C13). */
async function noAnswer(timeoutMs: number): Promise<unknown> {
  const net = await import('net');
  const server = net.createServer(() => { /* silent */ });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const t0 = Date.now();
  const error = await errorOf(dist.initProcessGroup({ initMethod: `tcp://127.0.0.1:${port}`, rank: 1, worldSize: 2, timeoutMs }));
  return { error, ms: Date.now() - t0, port, initialized: dist.isInitialized() };
}

async function main(): Promise<void> {
  torch.setNumThreads(1);
  const scenario = process.argv[2];
  const arg = process.argv[3] ? JSON.parse(process.argv[3]) : {};
  const rank = Number(process.env.RANK);
  let result: unknown;
  if (scenario === 'collectives') {
    result = await collectives();
  } else if (scenario === 'mismatches') {
    result = await mismatches();
  } else if (scenario === 'destroy-pending') {
    result = await destroyPending(arg.timeoutMs);
  } else if (scenario === 'no-answer') {
    result = await noAnswer(arg.timeoutMs);
  } else if (scenario === 'openai-step') {
    // Rank r steps on images [r b, (r + 1) b), from a model seeded initSeed + r (rank 0's is everyone's).
    await dist.initProcessGroup({ timeoutMs: 60000 });
    result = { ...openaiStep({ from: rank * arg.batch, count: arg.batch, initSeed: arg.initSeed + rank, distributed: true }), refused: openaiRefusal() };
  } else if (scenario === 'openai-classifier-step') {
    await dist.initProcessGroup({ timeoutMs: 60000 });
    result = openaiClassifierStep({ from: rank * arg.batch, count: arg.batch, initSeed: arg.initSeed + rank, distributed: true });
  } else if (scenario === 'train') {
    await dist.initProcessGroup({ timeoutMs: 20000 });
    // Each rank builds its model from another seed: the run must start from rank 0's weights.
    const r = await trainTiny(arg.kind, { batchSize: arg.batchSize, steps: arg.steps, distributed: true, initSeed: 100 + rank,
      checkpointPath: arg.checkpointPath, resumeFrom: arg.resumeFrom });
    result = report(rank, r);
  } else if (scenario === 'sample') {
    await dist.initProcessGroup({ timeoutMs: 30000 });
    const { diffusion, classifier } = samplingSetup(arg.steps);
    const images = await sampleDistributed(diffusion, { ...guidedRequest(classifier, arg.batch), seed: arg.seed, chunkSize: arg.chunkSize });
    result = { shape: images.shape, values: Array.from(images.data() as Float32Array) };
  } else if (scenario === 'peer-dies') {
    // Rank 1 exits after the rendezvous; rank 0's next collective must fail, not hang.
    await dist.initProcessGroup({ timeoutMs: arg.timeoutMs });
    if (rank === 1) process.exit(3);
    const t0 = Date.now();
    const error = await dist.allReduce(torch.ones([4])).then(() => 'no error', (e: Error) => e.message);
    result = { error, ms: Date.now() - t0 };
  } else if (scenario === 'peer-hangs') {
    // Rank 1 stays alive but never joins the collective.
    await dist.initProcessGroup({ timeoutMs: arg.timeoutMs });
    if (rank === 1) {
      await new Promise((r) => setTimeout(r, arg.timeoutMs * 2));
      result = { idle: true };
    } else {
      const t0 = Date.now();
      const error = await dist.allReduce(torch.ones([4])).then(() => 'no error', (e: Error) => e.message);
      result = { error, ms: Date.now() - t0 };
    }
  } else if (scenario === 'alone') {
    // Nobody else comes to the rendezvous.
    const t0 = Date.now();
    const error = await dist.initProcessGroup({ timeoutMs: arg.timeoutMs }).then(() => 'no error', (e: Error) => e.message);
    result = { error, ms: Date.now() - t0, initialized: dist.isInitialized() };
  } else if (scenario === 'train-peer-dies') {
    // Rank 1 dies by SIGKILL at step 3; rank 0's training must reject, not hang.
    await dist.initProcessGroup({ timeoutMs: arg.timeoutMs });
    const t0 = Date.now();
    const error = await trainTiny('diffusion', { batchSize: 2, steps: 100000, distributed: true, initSeed: 1,
      onStep: (s) => { if (rank === 1 && s === 3) process.kill(process.pid, 'SIGKILL'); } }).then(() => 'no error', (e: Error) => e.message);
    result = { error, ms: Date.now() - t0 };
  } else if (scenario === 'crash-in-training') {
    // Launched: every rank writes its pid; rank 1 dies by SIGKILL at step 3 of training.
    fs.writeFileSync(path.join(arg.dir, `pid-${rank}`), String(process.pid));
    await dist.initProcessGroup({ timeoutMs: arg.timeoutMs });
    await trainTiny('diffusion', { batchSize: 2, steps: 100000, distributed: true, initSeed: 1,
      onStep: (s) => { if (rank === 1 && s === 3) process.kill(process.pid, 'SIGKILL'); } });
    result = { finished: true };
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  if (process.send) await new Promise<void>((resolve) => process.send!(result, undefined, {}, () => resolve()));
  else if (arg.out) fs.writeFileSync(path.join(arg.out, `rank-${rank}.json`), JSON.stringify(result));
}

if (require.main === module) {
  main().then(
    // Exit at once: a process group's threads would not keep the process alive, but the
    // hanging peer's timer would.
    () => process.exit(0),
    (err: Error) => {
      process.stderr.write(`rank ${process.env.RANK}: ${err.stack ?? err.message}\n`);
      process.exit(1);
    },
  );
}
