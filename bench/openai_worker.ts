// Our side of bench/openai_nets.ts, one configuration per child process:
//   node dist/bench/openai_worker.js sample '<OpenAISpec JSON>'  guided DDIM as a user runs it
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
  const flags = { ...spec.modelFlags, timestep_respacing: respacing };
  const { model, diffusion } = openai.createModelAndDiffusion(flags, { device: 'cpu', ...(spec.autocast ? { autocast: spec.autocast } : {}) });
  model.loadStateDict(spec.files.model).eval();
  const classifier = openai.createClassifier(spec.classifierFlags, { device: 'cpu' }).loadStateDict(spec.files.classifier).eval();
  return { model, diffusion, classifier };
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
  if (mode === 'sample') await sample(spec);
  else if (mode === 'save') save(spec);
  else throw new Error(`usage: openai_worker.js sample|save '<json>'`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
