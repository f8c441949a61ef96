// Our side of bench/openai_nets.ts, one configuration per child process:
//   node dist/bench/openai_worker.js sample '<OpenAISpec JSON>'  guided DDIM as a user runs it
//     (timed step by step within a sample; with spec.runs, over whole samples, as on CUDA)
//   node dist/bench/openai_worker.js save '<OpenAISpec JSON>'    our TorchScript nets, for the profile
// The weights are the .pt files openai's code wrote (openai_python.py prepare).
import { classifierGuidance, openai, torch } from '../lib';
import { emitResult } from './common';
import type { OpenAISpec } from './openai_spec';

const rssStartKiB = process.resourceUsage().maxRSS;

function usage(): { cpu: number; faults: number; wall: number } {
  const r = process.resourceUsage();
  return { cpu: (r.userCPUTime + r.systemCPUTime) / 1000, faults: r.minorPageFault, wall: performance.now() };
}

function nets(spec: OpenAISpec, respacing: string) {
  const device = spec.device ?? 'cpu';
  const flags = { ...spec.modelFlags, timestep_respacing: respacing };
  // createModel builds for the device (float16 blocks on CUDA when use_fp16), weights on the CPU.
  const model = openai.createModel(flags, { device }).loadStateDict(spec.files.model).to(device).eval();
  const diffusion = openai.createGaussianDiffusion(model, flags, {
    device,
    ...(spec.autocast ? { autocast: spec.autocast } : {}),
    ...(spec.cudaGraph !== undefined ? { cudaGraph: spec.cudaGraph } : {}),
  });
  const classifier = openai.createClassifier(spec.classifierFlags, { device }).loadStateDict(spec.files.classifier).to(device).eval();
  return { model, diffusion, classifier };
}

/** Whole samples of spec.steps DDIM steps (as on CUDA), the first untimed; each ends in a copy to the host. */
async function sampleWhole(spec: OpenAISpec): Promise<void> {
  torch.setNumThreads(spec.threads);
  const device = spec.device ?? 'cpu';
  const { diffusion, classifier } = nets(spec, `ddim${spec.steps}`);
  torch.manualSeed(spec.seed);
  const y = torch.randint(0, 1000, [spec.batch]).to(device);
  const options = {
    batchSize: spec.batch,
    sampler: 'ddim' as const,
    modelKwargs: { y },
    condFn: classifierGuidance,
    guidanceKwargs: { classifier, y, classifierScale: spec.classifierScale },
  };
  const start = usage();
  const once = async (): Promise<number> => {
    const t0 = performance.now();
    const out = await diffusion.sample(options);
    out.toFloat32Array();
    out.dispose();
    return performance.now() - t0;
  };
  const warmupMs = await once();
  const timed = usage();
  const msPerStep: number[] = [];
  for (let run = 0; run < (spec.runs ?? 1); run++) msPerStep.push((await once()) / spec.steps);
  const end = usage();
  const steps = msPerStep.length * spec.steps;
  emitResult({
    side: 'ours',
    msPerStep,
    cpuMsPerStep: (end.cpu - timed.cpu) / steps,
    faultsPerStep: (end.faults - timed.faults) / steps,
    warmupMs,
    rssStartKiB,
    rssPeakKiB: process.resourceUsage().maxRSS,
    threads: torch.getNumThreads(),
    cpuMs: end.cpu - start.cpu,
    cudaGraphs: torch.cuda.graphStats(),
  });
  y.dispose();
}

async function sample(spec: OpenAISpec): Promise<void> {
  torch.setNumThreads(spec.threads);
  const { diffusion, classifier } = nets(spec, `ddim${spec.steps + spec.warmupSteps}`);
  torch.manualSeed(spec.seed);
  const y = torch.randint(0, 1000, [spec.batch]);
  const start = usage();
  const marks: ReturnType<typeof usage>[] = [];
  // Progress arrives on this thread after each step: its time stamps trail the steps by the
  // same hop, so their differences are the steps' times.
  const out = await diffusion.sample({
    batchSize: spec.batch,
    sampler: 'ddim',
    modelKwargs: { y },
    condFn: classifierGuidance,
    guidanceKwargs: { classifier, y, classifierScale: spec.classifierScale },
    onProgress: () => marks.push(usage()),
  });
  out.dispose();
  const timed = spec.warmupSteps > 0 ? marks.slice(spec.warmupSteps - 1) : [start, ...marks];
  const n = timed.length - 1;
  emitResult({
    side: 'ours',
    msPerStep: timed.slice(1).map((m, i) => m.wall - timed[i].wall),
    cpuMsPerStep: (timed[n].cpu - timed[0].cpu) / n,
    faultsPerStep: (timed[n].faults - timed[0].faults) / n,
    warmupMs: timed[0].wall - start.wall,
    rssStartKiB,
    rssPeakKiB: process.resourceUsage().maxRSS,
    threads: torch.getNumThreads(),
    cpuMs: usage().cpu,
  });
}

function save(spec: OpenAISpec): void {
  const { model, classifier } = nets(spec, '');
  model.save(spec.files.oursModel);
  classifier.save(spec.files.oursClassifier);
  emitResult({ cpuMs: usage().cpu });
}

async function main(): Promise<void> {
  const [mode, json] = process.argv.slice(2);
  const spec = JSON.parse(json) as OpenAISpec;
  if (mode === 'sample' && spec.runs !== undefined) await sampleWhole(spec);
  else if (mode === 'sample') await sample(spec);
  else if (mode === 'save') save(spec);
  else throw new Error(`usage: openai_worker.js sample|save '<json>'`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
