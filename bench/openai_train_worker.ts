// Our side of bench/openai_train.ts, one configuration per child process:
//   node dist/bench/openai_train_worker.js train '<OpenAITrainSpec JSON>'
// openai.TrainLoop.runStep on the batches and from the weights openai's code wrote
// (openai_train_python.py prepare), as their run_loop steps.
import { openai, readStateDict, torch } from '../lib';
import { emitResult } from './common';
import type { OpenAITrainSpec } from './openai_train_spec';

function usage(): { cpu: number; faults: number; wall: number } {
  const r = process.resourceUsage();
  return { cpu: (r.userCPUTime + r.systemCPUTime) / 1000, faults: r.minorPageFault, wall: performance.now() };
}

function train(spec: OpenAITrainSpec): void {
  torch.setNumThreads(spec.threads);
  const model = openai.createModel(spec.modelFlags, { device: 'cpu' });
  model.loadStateDict(spec.files.model).train();
  const data = readStateDict(spec.files.data);
  const f = spec.trainFlags;
  const loop = new openai.TrainLoop(openai.createGaussianDiffusion(model, spec.modelFlags), {
    lr: f.lr, weight_decay: f.weight_decay, batch_size: f.batch_size, microbatch: f.microbatch, ema_rate: f.ema_rate, seed: spec.seed,
  });
  const marks: [ReturnType<typeof usage>, ReturnType<typeof usage>][] = [];
  const losses: number[] = [];
  for (let i = 0; i < spec.steps + spec.warmupSteps; i++) {
    const start = usage();
    const log = loop.runStep(data[`batch${i}`], { y: data[`y${i}`] });
    losses.push(log.loss);
    marks.push([start, usage()]);
  }
  const timed = marks.slice(spec.warmupSteps);
  const n = timed.length;
  emitResult({
    side: 'ours',
    msPerStep: timed.map(([a, b]) => b.wall - a.wall),
    cpuMsPerStep: timed.reduce((s, [a, b]) => s + b.cpu - a.cpu, 0) / n,
    faultsPerStep: timed.reduce((s, [a, b]) => s + b.faults - a.faults, 0) / n,
    losses: losses.slice(spec.warmupSteps),
    rssPeakKiB: process.resourceUsage().maxRSS,
    threads: torch.getNumThreads(),
    cpuMs: usage().cpu,
  });
  for (const t of Object.values(data)) t.dispose();
  model.dispose();
}

const [mode, json] = process.argv.slice(2);
if (mode !== 'train' || !json) {
  console.error(`usage: openai_train_worker.js train '<json>'`);
  process.exit(2);
}
try {
  train(JSON.parse(json) as OpenAITrainSpec);
} catch (err) {
  console.error(err);
  process.exit(1);
}
