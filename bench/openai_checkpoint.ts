// Peak memory and time of training openai's UNetModel with and without use_checkpoint (issue 20,
// section 1, Memory): their gradient checkpointing of ResBlocks and AttentionBlocks.
//
//   npm run bench:openai-checkpoint -- [--steps N] [--batch B] [--threads T] [--out FILE]
//
// Each way runs in a fresh child (alternating which goes first over the rounds), with glibc's
// malloc tuned (MALLOC_TUNED) and our CPU allocator's cache of freed blocks off, so the peak RSS
// is what the step holds at once rather than what the cache keeps for reuse. A child builds the
// net (64x64, model_channels 64, channel_mult 1,2,2,2, attention at 16 and 8, 2 res blocks,
// learned sigma, class-conditional), reads its peak RSS, runs one untimed TrainLoop step and
// the timed ones, and reads it again: the rise is what training took. Writes
// bench/OPENAI_CHECKPOINT.md (or --out).
import * as fs from 'fs';
import * as path from 'path';
import { MALLOC_TUNED, MALLOC_TUNED_TEXT } from './cases';
import { ROOT, emitResult, fmt, machineInfo, median, mib, runChild, sourceCommit, table } from './common';
import { openai, torch } from '../lib';

const FLAGS =
  '--image_size 64 --num_channels 64 --num_res_blocks 2 --channel_mult 1,2,2,2 --attention_resolutions 16,8 ' +
  '--class_cond True --learn_sigma True --diffusion_steps 1000 --noise_schedule linear --dropout 0.1 --use_fp16 False';

interface Spec {
  useCheckpoint: boolean;
  steps: number;
  batch: number;
  threads: number;
}

interface Result {
  useCheckpoint: boolean;
  baseRssKiB: number;
  peakRssKiB: number;
  /** Our CPU allocator: bytes in tensors before the timed steps, and the most at once during them. */
  heldBytes: number;
  peakBytes: number;
  wallMsPerStep: number[];
  cpuMsPerStep: number[];
  losses: number[];
  cpuMs: number;
}

function child(spec: Spec): void {
  const cpu0 = process.cpuUsage();
  torch.setNumThreads(spec.threads);
  torch.setCpuCacheLimit(0);
  torch.manualSeed(0);
  const flags = { ...openai.parseFlags(FLAGS), use_checkpoint: spec.useCheckpoint };
  const { model, diffusion } = openai.createModelAndDiffusion(flags as never);
  const loop = new openai.TrainLoop(diffusion, { lr: 1e-4, batch_size: spec.batch });
  const x = torch.rand([spec.batch, 3, 64, 64]).mul(2).sub(1);
  const y = torch.tensor(Array.from({ length: spec.batch }, (_, i) => i % 1000), { dtype: 'int64' });
  const baseRssKiB = process.resourceUsage().maxRSS;
  const losses: number[] = [];
  let heldBytes = 0;
  const wallMsPerStep: number[] = [];
  const cpuMsPerStep: number[] = [];
  for (let i = 0; i <= spec.steps; i++) {
    torch.manualSeed(100 + i); // the same t, noise and dropout masks both ways
    if (i === 1) {
      torch.resetCpuPeakMemoryStats();
      heldBytes = torch.cpuMemoryStats().allocated;
    }
    const c = process.cpuUsage();
    const w = process.hrtime.bigint();
    const log = loop.runStep(x, { y });
    if (i === 0) continue; // the first step allocates the optimizer's state and warms up
    wallMsPerStep.push(Number(process.hrtime.bigint() - w) / 1e6);
    const used = process.cpuUsage(c);
    cpuMsPerStep.push((used.user + used.system) / 1000);
    losses.push(log.loss);
  }
  const peakRssKiB = process.resourceUsage().maxRSS;
  const peakBytes = torch.cpuMemoryStats().peakAllocated;
  const total = process.cpuUsage(cpu0);
  torch.dispose([x, y]);
  model.dispose();
  emitResult({ useCheckpoint: spec.useCheckpoint, baseRssKiB, peakRssKiB, heldBytes, peakBytes, wallMsPerStep, cpuMsPerStep, losses, cpuMs: (total.user + total.system) / 1000 } satisfies Result);
}

function arg(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
}

async function main(argv: string[]): Promise<void> {
  const steps = Number(arg(argv, '--steps', '2'));
  const batch = Number(arg(argv, '--batch', '4'));
  const threads = Number(arg(argv, '--threads', '1'));
  const rounds = Number(arg(argv, '--rounds', '1'));
  const out = arg(argv, '--out', path.join(ROOT, 'bench', 'OPENAI_CHECKPOINT.md'));
  const runs: { result: Result; externalCores: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? [false, true] : [true, false];
    for (const useCheckpoint of order) {
      const spec: Spec = { useCheckpoint, steps, batch, threads };
      const c = await runChild<Result>(process.execPath, [__filename, '--child', JSON.stringify(spec)], MALLOC_TUNED);
      console.log(`use_checkpoint ${useCheckpoint}: peak RSS ${mib(c.result.peakRssKiB)} MiB (${mib(c.result.baseRssKiB)} before training), ` +
        `tensors at most ${mib(c.result.peakBytes / 1024)} MiB (${mib(c.result.heldBytes / 1024)} held between steps), ` +
        `${fmt(median(c.result.cpuMsPerStep) / 1000, 2)} CPU s/step, ${fmt(median(c.result.wallMsPerStep) / 1000, 2)} wall s/step, losses ${c.result.losses.map((l) => l.toFixed(5)).join(' ')}; other load ${fmt(c.externalCores, 2)} cores`);
      runs.push({ result: c.result, externalCores: c.externalCores });
    }
  }
  const info = await machineInfo();
  const rows = runs.map(({ result: r, externalCores }) => [
    r.useCheckpoint ? 'True' : 'False',
    mib(r.peakRssKiB),
    mib(r.baseRssKiB),
    mib(r.peakRssKiB - r.baseRssKiB),
    mib(r.peakBytes / 1024),
    mib(r.heldBytes / 1024),
    mib((r.peakBytes - r.heldBytes) / 1024),
    fmt(median(r.cpuMsPerStep) / 1000, 2),
    fmt(median(r.wallMsPerStep) / 1000, 2),
    r.losses.map((l) => l.toFixed(5)).join(', '),
    fmt(externalCores, 2),
  ]);
  const text = [
    '# Training memory with and without use_checkpoint (openai UNetModel)',
    '',
    `Measured at commit ${sourceCommit()} on ${info.cpu} (${info.cores} cores, ${info.memoryGiB} GiB), ${info.date}, LibTorch ${info.libtorch}, Node ${info.node}.`,
    `Made by \`npm run bench:openai-checkpoint -- --steps ${steps} --batch ${batch} --threads ${threads} --rounds ${rounds}\` (bench/openai_checkpoint.ts).`,
    '',
    `Model and diffusion: their flags \`${FLAGS}\`, plus \`--use_checkpoint\` as in the first column. TrainLoop lr 1e-4, batch ${batch}, ` +
      `${threads} thread(s), hybrid loss, float32 on the CPU. Each row is one fresh child process: one untimed step, then ${steps} timed ones ` +
      '(medians), the same t, noise and dropout masks both ways. Environment: ' + `${MALLOC_TUNED_TEXT}, our CPU allocator's cache off (setCpuCacheLimit(0)).`,
    '',
    'Peak RSS is the process\'s maxRSS after the steps; "before" is it after building the net and diffusion, before the first step; ' +
      '"training" is the rise, i.e. what the step (activations kept for backward, gradients, AdamW state, EMA) added at its peak. ' +
      'The tensor columns are our CPU allocator\'s count (torch.cpuMemoryStats()) over the timed steps: the most bytes in tensors at once, ' +
      'the bytes held between steps (weights, gradients, AdamW state, EMA, the batch), and the difference, what a step adds at its peak ' +
      '(mostly the activations kept for backward). oneDNN\'s own scratch buffers do not go through it. ' +
      'CPU s/step counts all threads and is less sensitive to other load than wall time; "other load" is the cores other processes kept busy meanwhile.',
    '',
    table(['use_checkpoint', 'peak RSS MiB', 'before MiB', 'training MiB', 'tensors peak MiB', 'held between steps MiB', 'step adds MiB', 'CPU s/step', 'wall s/step', 'losses of the timed steps', 'other load (cores)'], rows),
    '',
  ].join('\n');
  fs.writeFileSync(out, text);
  console.log(`wrote ${out}`);
}

if (process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3]) as Spec);
} else {
  main(process.argv.slice(2)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
