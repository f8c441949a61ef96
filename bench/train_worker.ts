// Our side of the training benchmark, run as a child process of bench/training.ts:
//   node dist/bench/train_worker.js '<TrainSpec JSON>'
// trainDiffusion as a user calls it, on the native Unet with the weights Python loads from the
// TorchScript file. Each step's end is stamped by onProgress (posted from the training thread
// to this idle JS thread, well under a millisecond late); the first warmupSteps are untimed.
import { torch, trainDiffusion, Unet } from '../lib';
import { emitResult } from './common';
import type { TrainBenchResult, TrainSpec } from './training';

const rssStartKiB = process.resourceUsage().maxRSS;

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as TrainSpec;
  torch.setNumThreads(spec.threads);
  const unet = new Unet(spec.unet).loadStateDict(spec.files.unetSafetensors);
  // The same images as Python's: torch.manual_seed(dataSeed); rand * 2 - 1 (one CPU generator in both).
  torch.manualSeed(spec.dataSeed);
  const u = torch.rand([spec.dataCount, spec.channels, spec.imageSize, spec.imageSize]);
  const data = u.mul(2).sub(1);
  u.dispose();

  const stamps: number[] = [];
  let cpuAtWarm = 0;
  let faultsAtWarm = 0;
  const t0 = performance.now();
  const result = await trainDiffusion(unet, {
    data,
    steps: spec.warmupSteps + spec.steps,
    batchSize: spec.batch,
    lr: spec.lr,
    weightDecay: spec.weightDecay,
    gradClip: spec.gradClip,
    emaDecay: spec.emaDecay,
    seed: spec.seed,
    timesteps: spec.timesteps,
    betaSchedule: spec.betaSchedule,
    objective: spec.objective,
    autocast: spec.autocast,
    onProgress: ({ step }) => {
      stamps.push(performance.now());
      if (step === spec.warmupSteps) {
        cpuAtWarm = cpuMs();
        faultsAtWarm = process.resourceUsage().minorPageFault;
      }
    },
  });
  const runCpuMs = cpuMs() - cpuAtWarm;
  const runMinorFaults = process.resourceUsage().minorPageFault - faultsAtWarm;
  const timesMs = stamps.slice(spec.warmupSteps).map((t, i) => t - stamps[spec.warmupSteps - 1 + i]);
  const out: TrainBenchResult = {
    side: 'ours',
    timesMs,
    warmupMs: stamps[spec.warmupSteps - 1] - t0,
    losses: Array.from(result.losses),
    runCpuMs,
    runMinorFaults,
    cpuMs: cpuMs(),
    rssStartKiB,
    rssPeakKiB: process.resourceUsage().maxRSS,
    threads: torch.getNumThreads(),
  };
  emitResult(out);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
