// npm run bench:distributed [-- --rounds N] [-- --batch B] [-- --warmup W] [-- --steps N] [-- --reps R] [-- --max-wait S] [-- --out FILE]
//
// Data-parallel numbers on this machine and on paper, written to bench/DISTRIBUTED.md:
//  (1) DDP training of the shipped recipe's Unet: 1 process x 1 thread vs 2 processes x
//      1 thread (Gloo on loopback), batch B per process; images/s and scaling efficiency;
//  (2) the cost of one gradient all-reduce: allReduce('avg') of a flat float32 tensor the
//      size of that Unet's gradients, and of one 25 MiB bucket (the trainer's bucket size);
//  (3) arithmetic: a ring all-reduce of openai's 64x64 model's gradients across N machines.
// The same file is the child: `node dist/bench/distributed.js train|allreduce JSON` (env://
// variables set by the parent) prints one result line. Nothing here asserts a time.
import * as fs from 'fs';
import * as path from 'path';
import { Unet, torch, trainDiffusion } from '../lib';
import { freePort } from '../lib/launch';
import { RECIPE } from '../lib/recipe';
import { BENCH_SRC, ROOT, cpuJiffies, emitResult, fmt, killChildren, machineInfo, max, median, min, runChild, sh, table, waitForQuiet } from './common';

const dist = torch.distributed;
const BUCKET_BYTES = 25 * 2 ** 20; // ProcessGroup::average's default (native/distributed/process_group.h)
const DATA_IMAGES = 512;

interface Args { rounds: number; batch: number; warmup: number; steps: number; reps: number; maxWaitS: number; out: string }

function parseArgs(argv: string[]): Args {
  const args: Args = { rounds: 5, batch: 8, warmup: 3, steps: 20, reps: 20, maxWaitS: 60, out: path.join(BENCH_SRC, 'DISTRIBUTED.md') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer`);
      return v;
    };
    if (a === '--rounds') args.rounds = next();
    else if (a === '--batch') args.batch = next();
    else if (a === '--warmup') args.warmup = next();
    else if (a === '--steps') args.steps = next();
    else if (a === '--reps') args.reps = next();
    else if (a === '--max-wait') args.maxWaitS = next();
    else if (a === '--out') args.out = path.resolve(argv[++i] ?? '');
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench:distributed -- [--rounds N] [--batch B per process] [--warmup W] [--steps N] [--reps R] [--max-wait SECONDS before starting, for < 0.5 cores of other load; default 60] [--out FILE]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  return args;
}

// ---------------------------------------------------------------------------------------
// Children

interface TrainResult { rank: number; world: number; params: number; timedMs: number; images: number; cpuMs: number; wallMs: number; allImages: number }
interface AllReduceResult { rank: number; cases: { label: string; numel: number; ms: number[] }[]; cpuMs: number }

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Trains the recipe's Unet for warmup + steps steps; times the last `steps` by the progress callbacks. */
async function childTrain(o: { batch: number; warmup: number; steps: number; distributed: boolean }): Promise<TrainResult> {
  if (o.distributed) await dist.initProcessGroup({ timeoutMs: 120_000 });
  const world = o.distributed ? dist.getWorldSize() : 1;
  const rank = o.distributed ? dist.getRank() : 0;
  // Random images: the step's cost does not depend on their values, and the bench needs no dataset.
  torch.manualSeed(3);
  const data = torch.rand([DATA_IMAGES, RECIPE.channels, RECIPE.imageSize, RECIPE.imageSize]).mul(2).sub(1);
  torch.manualSeed(1);
  const model = new Unet(RECIPE.unet);
  const params = Object.values(model.namedParameters()).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const { lr, emaDecay, gradClip, seed } = RECIPE.unetTrain;
  const stamps: number[] = [];
  const cpu0 = cpuMs();
  const wall0 = performance.now();
  await trainDiffusion(model, {
    data, steps: o.warmup + o.steps, batchSize: o.batch, lr, emaDecay, gradClip, seed,
    timesteps: RECIPE.timesteps, betaSchedule: RECIPE.betaSchedule, objective: RECIPE.objective,
    distributed: o.distributed, onProgress: ({ step }) => { stamps[step] = performance.now(); },
  });
  const wallMs = performance.now() - wall0;
  const used = cpuMs() - cpu0; // all of the process's threads (Gloo's included), warm-up steps included
  const timedMs = stamps[o.warmup + o.steps] - stamps[o.warmup];
  if (o.distributed) dist.destroyProcessGroup();
  return { rank, world, params, timedMs, images: world * o.batch * o.steps, cpuMs: used, wallMs, allImages: world * o.batch * (o.warmup + o.steps) };
}

/** Times allReduce('avg') of flat float32 tensors, ranks lined up by a barrier before each. */
async function childAllReduce(o: { sizes: { label: string; numel: number }[]; reps: number }): Promise<AllReduceResult> {
  await dist.initProcessGroup({ timeoutMs: 120_000 });
  const cpu0 = cpuMs();
  const cases: AllReduceResult['cases'] = [];
  for (const { label, numel } of o.sizes) {
    const t = torch.rand([numel]);
    const ms: number[] = [];
    for (let i = 0; i < o.reps + 3; i++) {
      await dist.barrier();
      const t0 = performance.now();
      await dist.allReduce(t, 'avg');
      if (i >= 3) ms.push(performance.now() - t0); // the first three are warm-up
    }
    cases.push({ label, numel, ms });
    t.dispose();
  }
  const rank = dist.getRank();
  dist.destroyProcessGroup();
  return { rank, cases, cpuMs: cpuMs() - cpu0 };
}

// ---------------------------------------------------------------------------------------
// Parent

const CHILD = __filename;
const ONE_THREAD = { OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };

interface Ranked<T> { results: T[]; wallMs: number; externalCores: number }

/** Runs `world` children of one kind (env:// set when world > 1); other load measured over all of them. */
async function runRanks<T extends { cpuMs: number }>(world: number, mode: string, arg: object): Promise<Ranked<T>> {
  const port = await freePort();
  const before = cpuJiffies();
  const started = Date.now();
  const runs = await Promise.all(Array.from({ length: world }, (_, rank) => runChild<T>(process.execPath, [CHILD, mode, JSON.stringify(arg)], {
    ...ONE_THREAD,
    ...(world > 1 ? { RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) } : {}),
  })));
  const wallMs = Date.now() - started;
  const after = cpuJiffies();
  const own = runs.reduce((s, r) => s + r.result.cpuMs, 0);
  const externalCores = before && after ? Math.max(0, (((after.busy - before.busy) / 100) * 1000 - own) / wallMs) : NaN;
  return { results: runs.map((r) => r.result), wallMs, externalCores };
}

const loadLine = async (): Promise<string> => (await sh('uptime', [])).replace(/^.*load average:\s*/, '');

function ringTable(): string {
  const fixture = JSON.parse(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'openai', 'full_64x64.json'), 'utf8')) as Record<string, { params: [string, number[]][] }>;
  const count = (k: string): number => fixture[k].params.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
  const models = [['64x64 diffusion model', count('model')], ['64x64 classifier', count('classifier')]] as const;
  const links = [10, 25, 100, 400];
  const rows: string[][] = [];
  for (const [name, params] of models) {
    for (const [dtype, bytesPer] of [['float32', 4], ['float16', 2]] as const) {
      const bytes = params * bytesPer;
      for (const n of [2, 8, 64]) {
        const sent = (2 * (n - 1) / n) * bytes; // bytes each machine sends (and receives) in a ring all-reduce
        rows.push([`${name} (${params.toLocaleString('en-US')} params)`, dtype, `${fmt(bytes / 2 ** 20, 0)} MiB`, String(n), `${fmt(sent / 2 ** 20, 0)} MiB`,
          ...links.map((g) => fmt((sent * 8) / (g * 1e9) * 1000, 0))]);
      }
    }
  }
  return table(['model', 'gradients', 'bytes per step', 'machines N', 'each sends 2(N-1)/N x bytes', ...links.map((g) => `ms at ${g} Gb/s`)], rows);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  process.on('SIGINT', () => { killChildren(); process.exit(130); });
  const started = Date.now();
  const machine = await machineInfo();
  const loadStart = await loadLine();
  console.log(`load average at start: ${loadStart}`);
  const quiet = await waitForQuiet(0.5, args.maxWaitS * 1000);
  console.log(`other processes kept ${fmt(quiet.busy, 2)} cores busy after waiting ${fmt(quiet.waitedMs / 1000, 0)} s`);

  // (1) Training: rounds alternate which configuration goes first.
  const train = { batch: args.batch, warmup: args.warmup, steps: args.steps };
  const one: { ips: number; ext: number; cpuPerImage: number; cores: number }[] = [];
  const two: typeof one = [];
  let params = 0;
  for (let r = 0; r < args.rounds; r++) {
    for (const world of r % 2 ? [2, 1] : [1, 2]) {
      const run = await runRanks<TrainResult>(world, 'train', { ...train, distributed: world > 1 });
      const timed = Math.max(...run.results.map((x) => x.timedMs)); // the ranks step in lockstep
      const ips = (run.results[0].images / timed) * 1000;
      params = run.results[0].params;
      // CPU time per image (all ranks' CPU / all images trained) hardly depends on what else runs.
      const cpuPerImage = run.results.reduce((s, x) => s + x.cpuMs, 0) / run.results[0].allImages;
      const cores = median(run.results.map((x) => x.cpuMs / x.wallMs));
      (world === 1 ? one : two).push({ ips, ext: run.externalCores, cpuPerImage, cores });
      console.log(`round ${r + 1}: ${world} process(es): ${fmt(ips, 2)} images/s (other load ${fmt(run.externalCores, 2)} cores; ${fmt(cpuPerImage, 1)} CPU ms per image)`);
    }
  }

  // (2) All-reduce of the Unet's gradients and of one full bucket.
  const sizes = [{ label: `recipe Unet's gradients (${params.toLocaleString('en-US')} float32, ${fmt((params * 4) / 2 ** 20, 2)} MiB)`, numel: params },
    { label: `one 25 MiB bucket (${(BUCKET_BYTES / 4).toLocaleString('en-US')} float32)`, numel: BUCKET_BYTES / 4 }];
  const ar = await runRanks<AllReduceResult>(2, 'allreduce', { sizes, reps: args.reps });
  const loadEnd = await loadLine();
  const minutes = (Date.now() - started) / 60000;

  const ipsOf = (xs: { ips: number }[]): number[] => xs.map((x) => x.ips);
  const m1 = median(ipsOf(one));
  const m2 = median(ipsOf(two));
  const effs = one.map((o, i) => two[i].ips / (2 * o.ips)); // per round
  const range = (xs: number[], d = 2): string => `${fmt(min(xs), d)}..${fmt(max(xs), d)}`;
  const cpu1 = median(one.map((x) => x.cpuPerImage));
  const cpu2 = median(two.map((x) => x.cpuPerImage));
  const cpuRange = (xs: typeof one): string => range(xs.map((x) => x.cpuPerImage), 1);
  const coresOf = (xs: typeof one): string => fmt(median(xs.map((x) => x.cores)), 2);
  const trainTable = table(['configuration', 'images/s (median)', 'min..max over rounds', 'other load (cores, max)', 'CPU ms per image (median; min..max)', 'cores used per process (median)'], [
    [`1 process x 1 thread, batch ${args.batch}`, fmt(m1, 2), range(ipsOf(one)), fmt(max(one.map((x) => x.ext)), 2), `${fmt(cpu1, 1)}; ${cpuRange(one)}`, coresOf(one)],
    [`2 processes x 1 thread (Gloo, loopback), batch ${args.batch} each`, fmt(m2, 2), range(ipsOf(two)), fmt(max(two.map((x) => x.ext)), 2), `${fmt(cpu2, 1)}; ${cpuRange(two)}`, coresOf(two)],
    ['scaling efficiency: 2-process / (2 x 1-process)', `${fmt(100 * (m2 / (2 * m1)), 0)}% (of medians)`, `${fmt(100 * min(effs), 0)}..${fmt(100 * max(effs), 0)}% (per round)`, '', `CPU per image 1-process / 2-process: ${fmt(100 * (cpu1 / cpu2), 0)}%`, ''],
  ]);
  const arRows = ar.results[0].cases.map((c, i) => {
    const ms = ar.results.map((r) => r.cases[i].ms); // rank 0's and rank 1's times of each call
    const all = ms[0].map((_, k) => Math.max(...ms.map((m) => m[k])));
    const bytes = c.numel * 4;
    return [c.label, fmt(median(all), 2), range(all), `${fmt((bytes / 2 ** 30) / (median(all) / 1000), 2)} GiB/s`];
  });
  const arTable = table(['tensor', 'ms per allReduce (median)', `min..max over ${args.reps} calls`, 'tensor bytes / median time'], arRows);
  const stepMs = (1000 * 2 * args.batch) / m2;
  const arUnetMs = median(ar.results[0].cases[0].ms.map((_, k) => Math.max(...ar.results.map((r) => r.cases[0].ms[k]))));
  const rounds = table(['round', '1 process images/s', 'other load (cores)', '2 processes images/s', 'other load (cores)', 'efficiency'],
    one.map((o, i) => [String(i + 1), fmt(o.ips, 2), fmt(o.ext, 2), fmt(two[i].ips, 2), fmt(two[i].ext, 2), `${fmt(100 * effs[i], 0)}%`]));

  const md = `# Data-parallel training: measured on this machine, and on paper

Generated by \`npm run bench:distributed\`${process.argv.length > 2 ? ` (\`${process.argv.slice(2).join(' ')}\`)` : ''} (bench/distributed.ts) at ${machine.commit} in ${fmt(minutes, 1)} min. Nothing here is asserted by a test; the numbers are this machine's on this day.

## Machine

${table(['', ''], [
    ['CPU (lscpu model name)', machine.cpu],
    ['cores', String(machine.cores)],
    ['memory', `${machine.memoryGiB} GiB`],
    ['node; torch (Python package the addon builds on)', `${machine.node}; ${machine.torchPython || 'unknown'}`],
    ['date', machine.date],
    ['commit measured', machine.commit],
    ['load average (1, 5, 15 min) at start', loadStart],
    ['load average at end', loadEnd],
    ['other processes before the first run', `${fmt(quiet.busy, 2)} cores busy (waited ${fmt(quiet.waitedMs / 1000, 0)} s, at most ${args.maxWaitS}, for < 0.5)`],
  ])}

The machine has ${machine.cores} cores and is shared with other jobs: a load average above ${machine.cores - 1} means the
two ranks of the 2-process runs competed with them for the cores, and "other load" in the
table says by how much (busy CPU time on the machine less our processes' own, per second of
the run). Read the efficiency with that column.

## (1) DDP training: 1 vs 2 processes, 1 thread each

The shipped recipe's Unet (lib/recipe.ts: \`Unet(${JSON.stringify(RECIPE.unet)})\`, ${params.toLocaleString('en-US')} parameters,
${RECIPE.imageSize}x${RECIPE.imageSize}, T = ${RECIPE.timesteps}, Adam with gradient clipping and EMA as the recipe) trained by
\`trainDiffusion\` on random images (${DATA_IMAGES} of them; a step's cost does not depend on the values). Each
process: \`torch.setNumThreads(1)\`, \`OMP_NUM_THREADS=1\`; the 2-process runs use
\`distributed: true\` over Gloo on 127.0.0.1 (one gradient all-reduce per step after
backward, in buckets of 25 MiB: here one bucket). ${args.warmup} warm-up steps, then ${args.steps} timed steps
(between the progress callbacks of those steps), ${args.rounds} rounds alternating which configuration goes
first. images/s = processes x batch x steps / time. CPU ms per image = the CPU time of all
ranks' processes (every thread, Gloo's included) over the whole training call / all images
trained, warm-up included: unlike images/s it hardly depends on what else runs on the cores,
so 1-process / 2-process CPU per image is what the efficiency would be on otherwise idle
cores if the ranks never waited for each other.

${trainTable}

Together our processes kept ${fmt(median(one.map((x) => x.cores)), 2)} cores busy in the 1-process runs and ${fmt(2 * median(two.map((x) => x.cores)), 2)} in the
2-process runs (medians, of ${machine.cores}). Where two ranks together get hardly more CPU than one process
alone, images/s shows the share of the machine the other jobs left, not what DDP costs; the
CPU-per-image ratio is then the better guide to the efficiency on idle cores.

At the median, a 2-process step of ${2 * args.batch} images takes ${fmt(stepMs, 0)} ms; the all-reduce of its gradients
measured in (2) (${fmt(arUnetMs, 1)} ms) is ${fmt((100 * arUnetMs) / stepMs, 1)}% of that.

<details><summary>each round</summary>

${rounds}

</details>

## (2) All-reduce cost per step (2 ranks, Gloo, 127.0.0.1)

\`torch.distributed.allReduce(t, 'avg')\` of a flat float32 tensor, the two ranks lined up by
\`barrier()\` before each call (so the time is the collective's, not one rank waiting for the
other), 3 warm-up calls, then ${args.reps} timed; a call's time is the slower rank's.
The trainer also flattens the gradients into the bucket and copies them back (not timed here).

${arTable}

## (3) On paper: openai's 64x64 model across N machines

Arithmetic, not a measurement. Parameter counts from test/fixtures/openai/full_64x64.json
(the shapes of openai's 64x64 checkpoints). Gradient bytes per step = parameters x 4
(float32) or x 2 (float16). A ring all-reduce over N machines sends (and receives)
2(N-1)/N x bytes per machine; time = that x 8 / link bandwidth, ignoring latency per
message, the overlap with backward that real DDP gets, and compute.

${ringTable()}
`;
  fs.writeFileSync(args.out, md);
  console.log(`\n${md}\nwrote ${path.relative(process.cwd(), args.out)}`);
}

if (require.main === module) {
  const mode = process.argv[2];
  if (mode === 'train' || mode === 'allreduce') {
    torch.setNumThreads(1);
    const arg = JSON.parse(process.argv[3]);
    (mode === 'train' ? childTrain(arg) : childAllReduce(arg)).then(
      (r) => { emitResult(r); process.exit(0); },
      (err: Error) => { process.stderr.write(`${err.stack ?? err.message}\n`); process.exit(1); },
    );
  } else {
    main().catch((err) => { console.error(err); process.exit(1); });
  }
}
