// Our side of a benchmark, run as a child process of run.ts (one configuration per process,
// so that its resident-set high-water mark is that configuration's alone).
//   node dist/bench/worker.js prepare '<PrepareSpec JSON>'   builds seeded models, saves them
//   node dist/bench/worker.js sample '<SampleSpec JSON>'     times sample() as a user calls it
import {
  Classifier,
  ClassifierGuidanceKwargs,
  classifierCondFn,
  classifierGuidance,
  CondFn,
  GaussianDiffusion,
  Module,
  saveSafetensors,
  Tensor,
  torch,
  Unet,
} from '../lib';
import type { ClassifierOptions, UnetOptions } from '../lib';
import { emitResult, timeMedian } from './common';
import type { ModelFiles, SampleResult, SampleSpec } from './spec';

export interface PrepareSpec {
  seed: number;
  unet: UnetOptions;
  classifier?: ClassifierOptions;
  files: ModelFiles;
}

const rssStartKiB = process.resourceUsage().maxRSS;

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Random weights from a seed, written as TorchScript (for Python) and safetensors (for us). */
function prepare(spec: PrepareSpec): void {
  torch.manualSeed(spec.seed);
  const unet = new Unet(spec.unet);
  unet.save(spec.files.unetPt);
  saveSafetensors(unet.stateDict(), spec.files.unetSafetensors);
  if (spec.classifier && spec.files.classifierPt && spec.files.classifierSafetensors) {
    const cls = new Classifier(spec.classifier);
    cls.save(spec.files.classifierPt);
    saveSafetensors(cls.stateDict(), spec.files.classifierSafetensors);
  }
  emitResult({ cpuMs: cpuMs() });
}

function diffusionFor(unet: Module, spec: SampleSpec, steps: number): GaussianDiffusion {
  const ancestral = spec.samplingTimesteps === spec.timesteps;
  // An ancestral warm-up needs a schedule of `steps` timesteps; its steps cost the same.
  const timesteps = ancestral ? steps : spec.timesteps;
  return new GaussianDiffusion(unet, { imageSize: spec.imageSize, channels: spec.channels, timesteps, samplingTimesteps: steps, autocast: spec.autocast, cudaGraph: spec.cudaGraph });
}

function condFnFor(kind: SampleSpec['guidance']): CondFn<ClassifierGuidanceKwargs> | undefined {
  switch (kind) {
    case 'none':
      return undefined;
    case 'native':
      return classifierGuidance;
    case 'js':
      return classifierCondFn;
    case 'js-zero':
      return (x: Tensor) => torch.zerosLike(x);
  }
}

async function sample(spec: SampleSpec): Promise<void> {
  torch.setNumThreads(spec.threads);
  // The native model as a user builds it, with the weights Python loads from the .pt file.
  const device = spec.device ?? 'cpu';
  const unet = new Unet(spec.unet).loadStateDict(spec.files.unetSafetensors).eval().to(device);
  let kwargs: ClassifierGuidanceKwargs | undefined;
  if (spec.guidance === 'native' || spec.guidance === 'js') {
    if (!spec.classifier || !spec.files.classifierSafetensors) throw new Error('guided sampling needs a classifier');
    const classifier = new Classifier(spec.classifier).loadStateDict(spec.files.classifierSafetensors).eval().to(device);
    kwargs = { classifier, y: torch.tensor(spec.y, { dtype: 'int64', device }), classifierScale: spec.classifierScale };
  }
  const condFn = condFnFor(spec.guidance);
  const options = { batchSize: spec.batch, condFn, guidanceKwargs: kwargs };

  const warm = diffusionFor(unet, spec, spec.warmupSteps);
  torch.manualSeed(spec.seed);
  let t0 = performance.now();
  (await warm.sample(options)).dispose();
  const warmupMs = performance.now() - t0;

  const diffusion = diffusionFor(unet, spec, spec.samplingTimesteps);
  const timesMs: number[] = [];
  const cpu0 = cpuMs();
  const faults0 = process.resourceUsage().minorPageFault;
  for (let run = 0; run < spec.runs; run++) {
    torch.manualSeed(spec.seed);
    t0 = performance.now();
    const out = await diffusion.sample(options);
    timesMs.push(performance.now() - t0);
    if (run === 0 && spec.outPath) {
      const data = out.toFloat32Array();
      require('fs').writeFileSync(spec.outPath, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
    out.dispose();
  }
  const runCpuMs = cpuMs() - cpu0;
  const runMinorFaults = process.resourceUsage().minorPageFault - faults0;

  let breakdown: SampleResult['breakdown'];
  if (spec.breakdown && device === 'cpu') {
    const shape = [spec.batch, spec.channels, spec.imageSize, spec.imageSize];
    const x = torch.randn(shape);
    const t = torch.full([spec.batch], Math.floor(spec.timesteps / 2), { dtype: 'int64' });
    const modelMs = timeMedian(() => torch.noGrad(() => unet.forward(x, t).dispose()));
    const condFnMs = kwargs ? timeMedian(() => classifierCondFn(x, t, kwargs!).dispose()) : NaN;
    breakdown = { modelMs, condFnMs };
  }

  const result: SampleResult = {
    side: 'ours',
    steps: spec.samplingTimesteps,
    timesMs,
    warmupMs,
    runCpuMs,
    runMinorFaults,
    cpuMs: cpuMs(),
    rssStartKiB,
    rssPeakKiB: process.resourceUsage().maxRSS,
    breakdown,
    threads: torch.getNumThreads(),
  };
  emitResult(result);
}

async function main(): Promise<void> {
  const [mode, json] = process.argv.slice(2);
  if (mode === 'prepare') prepare(JSON.parse(json) as PrepareSpec);
  else if (mode === 'sample') await sample(JSON.parse(json) as SampleSpec);
  else throw new Error(`usage: worker.js prepare|sample '<json>'`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
