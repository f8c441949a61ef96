// `npm run eval:samplers`: the fast samplers on the shipped Fashion-MNIST model, against
// 1,000-step and respaced ancestral sampling and 50-step DDIM (issue 18, section 4).
//
// A row is one sampler setting (sampler, steps, options) at one guidance scale. For each seed it
// samples n images of every class in one batch (class-major), guided by the shipped classifier
// (native classifierGuidance), and reports the mean over the seeds and their range of:
// - judged accuracy: the share judge A and judge B (scripts/eval-common.ts) label as the class
//   asked for;
// - diversity: the mean pairwise distance between samples asked for the same class, divided by
//   the same figure for 200 real test images of that class, averaged over the classes (1 = as
//   varied as the data): in judge B's penultimate features (64 channels after the global
//   average pool), and in pixels;
// - time: one guided sample of 16 images (batch 16, native classifierGuidance, on the CPU with
//   --threads intra-op threads), after one warm-up sample of its diffusion (a 10-step
//   dpm-solver++ sample, once a diffusion: the TorchScript model compiles over its first calls).
// - the aims of issue 18: within 2 points of 1,000-step ancestral on both judges at <= 20 model
//   calls (--reference gives that figure when the grid has no ancestral1000 samples); 16 images
//   in <= 5 s.
// With --no-sample the report reads only cached rows and seeds; the report says when the grid
// is reduced.
//
// Samples are cached per row and seed in .gd-cache/eval/samplers as uint8 (the [0, 1] images
// clamped and rounded to 256 levels, as a PNG keeps them), so a rerun only re-judges; times are
// cached there too (--retime measures again). --device cuda samples on a GPU (cache files named
// so); --samples-only samples and stops (no judges, no times).
//   node dist/scripts/eval-samplers.js [--samplers LIST] [--steps 10,15,20,25,50] [--scales 4,8] [--seeds 1,2] [--n 20]
//     [--baselines LIST] [--device cpu|cuda] [--threads 2] [--no-time] [--retime] [--time-settings IDS] [--times-only] [--samples-only]
//     [--no-sample] [--reference A,B] [--out FILE] [--picture FILE --picture-row ID]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Command } from 'commander';
import { classifierGuidance, Device, GaussianDiffusion, loadFashionMnist, loadSafetensors, Module, PretrainedOptions, saveImage, saveSafetensors, SampleOptions, Tensor, torch } from '../lib';
import { CACHE, judgeAccuracies, judges, realSpread, relativeSpread } from './eval-common';

const DIR = path.join(CACHE, 'samplers');

/** A sampler setting: which diffusion to load and what sample() is given. */
interface Setting {
  id: string;
  label: string;
  load: PretrainedOptions;
  options: SampleOptions;
  calls: number;
}

/** The fast samplers by id, for a step count. */
const FAST: Record<string, { label: string; options: (steps: number) => SampleOptions; calls: (steps: number) => number }> = {
  'dpm++2': { label: 'dpm-solver++, order 2', options: (steps) => ({ sampler: 'dpm-solver++', steps, order: 2 }), calls: (s) => s },
  'dpm++2-thr': { label: 'dpm-solver++, order 2, thresholding', options: (steps) => ({ sampler: 'dpm-solver++', steps, order: 2, thresholding: true }), calls: (s) => s },
  'dpm++3': { label: 'dpm-solver++, order 3', options: (steps) => ({ sampler: 'dpm-solver++', steps, order: 3 }), calls: (s) => s },
  'unipc-bh2-2': { label: 'unipc bh2, order 2', options: (steps) => ({ sampler: 'unipc', steps, order: 2, unipcVariant: 'bh2' }), calls: (s) => s },
  'unipc-bh2-3': { label: 'unipc bh2, order 3', options: (steps) => ({ sampler: 'unipc', steps, order: 3, unipcVariant: 'bh2' }), calls: (s) => s },
  'dpmpp-2m': { label: 'dpmpp-2m, Karras sigmas', options: (steps) => ({ sampler: 'dpmpp-2m', steps, sigmas: 'karras' }), calls: (s) => s },
  'euler-a': { label: 'euler-ancestral, Karras sigmas', options: (steps) => ({ sampler: 'euler-ancestral', steps, sigmas: 'karras' }), calls: (s) => s },
  heun: { label: 'heun, Karras sigmas', options: (steps) => ({ sampler: 'heun', steps, sigmas: 'karras' }), calls: (s) => 2 * s - 1 },
};

const BASELINES: Record<string, Setting> = {
  'ancestral1000': { id: 'ancestral1000', label: 'ancestral, 1,000 steps, the default', load: {}, options: { sampler: 'ancestral' }, calls: 1000 },
  'ancestral250': { id: 'ancestral250', label: 'ancestral, 250 respaced', load: { timestepRespacing: '250' }, options: { sampler: 'ancestral' }, calls: 250 },
  'ancestral100': { id: 'ancestral100', label: 'ancestral, 100 respaced', load: { timestepRespacing: '100' }, options: { sampler: 'ancestral' }, calls: 100 },
  'ddim50': { id: 'ddim50', label: 'DDIM, 50 steps (eta 0)', load: { samplingTimesteps: 50 }, options: { sampler: 'ddim' }, calls: 50 },
};

interface Flags {
  samplers: string[];
  steps: number[];
  scales: number[];
  seeds: number[];
  n: number;
  baselines: string[];
  device: Device;
  threads: number;
  time: boolean;
  retime?: boolean;
  timeScale: number;
  timesFile: string;
  timesOnly?: boolean;
  timeSettings?: string[];
  samplesOnly?: boolean;
  judgesOnly?: boolean;
  judgeDevice: Device;
  judgeSteps: number;
  out?: string;
  picture?: string;
  pictureRow?: string;
  picturePerClass: number;
  reference?: number[];
  referenceScale: number;
  referenceNote: string;
  sample: boolean;
}

const list = (v: string): string[] => v.split(',').filter((s) => s.length > 0);
const numbers = (v: string): number[] => list(v).map(Number);

function settings(flags: Flags): Setting[] {
  const out: Setting[] = flags.baselines.map((id) => {
    if (!BASELINES[id]) throw new Error(`unknown baseline ${id}; known: ${Object.keys(BASELINES).join(', ')}`);
    return BASELINES[id];
  });
  for (const id of flags.samplers) {
    const f = FAST[id];
    if (!f) throw new Error(`unknown sampler ${id}; known: ${Object.keys(FAST).join(', ')}`);
    for (const steps of flags.steps) out.push({ id: `${id}-s${steps}`, label: f.label, load: {}, options: f.options(steps), calls: f.calls(steps) });
  }
  return out;
}

/** One diffusion per load options (and device): the fast samplers share the full schedule's. */
const loaded = new Map<string, { diffusion: GaussianDiffusion; classifier: Module }>();
function load(setting: Setting, device: Device): { diffusion: GaussianDiffusion; classifier: Module } {
  const key = `${JSON.stringify(setting.load)}-${device}`;
  let got = loaded.get(key);
  if (!got) {
    const p = GaussianDiffusion.pretrained('fashion-mnist', setting.load);
    if (device === 'cpu') got = { diffusion: p.diffusion, classifier: p.classifier };
    else {
      const { options } = p.diffusion;
      const diffusion = new GaussianDiffusion(p.diffusion.model.to(device), {
        imageSize: options.imageSize,
        channels: options.channels,
        timesteps: p.meta.timesteps,
        betaSchedule: p.meta.betaSchedule,
        objective: p.meta.objective,
        samplingTimesteps: setting.load.samplingTimesteps ?? (setting.load.timestepRespacing === undefined ? p.meta.samplingTimesteps : undefined),
        ...(setting.load.timestepRespacing !== undefined ? { timestepRespacing: setting.load.timestepRespacing } : {}),
        clipAfterGuidance: options.clipAfterGuidance,
        ddimSamplingEta: options.ddimSamplingEta,
        device,
      });
      got = { diffusion, classifier: p.classifier.to(device) };
    }
    loaded.set(key, got);
  }
  return got;
}

const labelsFor = (classes: number, n: number): number[] => Array.from({ length: classes * n }, (_, i) => Math.floor(i / n));

function guided(setting: Setting, device: Device, y: number[], scale: number, seed: number): Promise<Tensor> {
  const { diffusion, classifier } = load(setting, device);
  const yt = torch.tensor(y, { dtype: 'int64' }).to(device);
  return diffusion
    .sample({ ...setting.options, batchSize: y.length, seed, condFn: classifierGuidance, guidanceKwargs: { classifier, y: yt, classifierScale: scale } } as SampleOptions)
    .finally(() => yt.dispose());
}

const cacheFile = (setting: Setting, scale: number, seed: number, n: number, device: Device): string =>
  path.join(DIR, `${setting.id}-scale${scale}-n${n}-seed${seed}${device === 'cpu' ? '' : `-${device.replace(':', '')}`}.safetensors`);

/** One row and seed's samples, [classes * n, 1, 32, 32] float in [0, 1] on the CPU: cached, else sampled and cached (as uint8). */
async function samples(setting: Setting, scale: number, seed: number, flags: Flags, classes: number, log: (s: string) => void): Promise<Tensor> {
  const file = cacheFile(setting, scale, seed, flags.n, flags.device);
  if (!fs.existsSync(file)) {
    const started = Date.now();
    const images = await guided(setting, flags.device, labelsFor(classes, flags.n), scale, seed);
    const bytes = torch.tidy(() => images.to('cpu').clamp(0, 1).mul(255).round().to('uint8'));
    images.dispose();
    fs.mkdirSync(DIR, { recursive: true });
    saveSafetensors({ images: bytes }, `${file}.tmp`); // renamed when complete: another process may read the cache
    fs.renameSync(`${file}.tmp`, file);
    bytes.dispose();
    log(`sampled ${path.basename(file)} (${((Date.now() - started) / 1000).toFixed(1)} s on ${flags.device})`);
  }
  const { images } = loadSafetensors(file);
  const x = torch.tidy(() => images.to('float32').div(255));
  images.dispose();
  return x;
}

interface Timing {
  s: number;
  when: string;
  cpu: string;
  cpus: number;
  load: number[];
}

const readTimes = (file: string): Record<string, Timing> => (fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {});
const timeKey = (setting: Setting, flags: Flags): string => `${setting.id}-scale${flags.timeScale}-threads${flags.threads}`;
const warmed = new Set<string>();

/**
 * Seconds for one guided sample of 16 images on the CPU, cached in --times-file by setting,
 * scale and threads. Each diffusion is warmed up once first (a 10-step dpm-solver++ sample):
 * the TorchScript model compiles over its first calls; the samplers themselves are C++.
 */
async function time16(setting: Setting, flags: Flags, classes: number, log: (s: string) => void): Promise<number> {
  const key = timeKey(setting, flags);
  const cached = readTimes(flags.timesFile)[key];
  if (cached && !flags.retime) return cached.s;
  const y = Array.from({ length: 16 }, (_, i) => i % classes);
  const diffusionKey = JSON.stringify(setting.load);
  if (!warmed.has(diffusionKey)) {
    (await guided({ ...setting, id: 'warm-up', options: { sampler: 'dpm-solver++', steps: 10 }, calls: 10 }, 'cpu', y, flags.timeScale, 99)).dispose();
    warmed.add(diffusionKey);
  }
  const t0 = performance.now();
  (await guided(setting, 'cpu', y, flags.timeScale, 1)).dispose();
  const s = (performance.now() - t0) / 1000;
  const times = readTimes(flags.timesFile);
  times[key] = { s, when: new Date().toISOString(), cpu: os.cpus()[0]?.model ?? '?', cpus: os.cpus().length, load: os.loadavg() };
  fs.mkdirSync(path.dirname(flags.timesFile), { recursive: true });
  fs.writeFileSync(`${flags.timesFile}.tmp`, JSON.stringify(times, null, 1));
  fs.renameSync(`${flags.timesFile}.tmp`, flags.timesFile);
  log(`timed ${key}: ${s.toFixed(2)} s (load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})`);
  return s;
}

/** Where and how the times were taken, from the times file. */
function timingNote(flags: Flags, grid: Setting[]): string {
  const times = readTimes(flags.timesFile);
  const used = grid.map((g) => times[timeKey(g, flags)]).filter((t): t is Timing => t !== undefined);
  if (!flags.time || used.length === 0) return 'no times.';
  const cpus = [...new Set(used.map((t) => `${t.cpu} (${t.cpus} CPUs)`))].join(', ');
  const loads = used.map((t) => t.load[0]);
  return (
    `the 16-image times (one batch of 16, scale ${flags.timeScale}, native classifierGuidance) with ${flags.threads} intra-op threads on ${cpus}, ` +
    `one sample each after one warm-up sample of its diffusion, ${used[0].when.slice(0, 10)}, 1-minute load average ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}.`
  );
}

/** "mean (lo-hi)" of the seeds' figures; just the figure for one seed. */
function meanRange(values: number[], digits: number, scale = 1): string {
  const v = values.map((x) => x * scale);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  if (v.length === 1) return mean.toFixed(digits);
  return `${mean.toFixed(digits)} (${Math.min(...v).toFixed(digits)}-${Math.max(...v).toFixed(digits)})`;
}

async function main(): Promise<void> {
  const flags = new Command()
    .name('eval-samplers')
    .option('--samplers <list>', `fast samplers (${Object.keys(FAST).join(', ')})`, list, ['dpm++2', 'dpm++2-thr', 'unipc-bh2-2', 'unipc-bh2-3', 'dpmpp-2m', 'euler-a'])
    .option('--steps <list>', 'steps of each fast sampler', numbers, [10, 15, 20, 25, 50])
    .option('--scales <list>', 'guidance scales', numbers, [4, 8])
    .option('--seeds <list>', 'sampling seeds (sample({ seed }))', numbers, [1, 2])
    .option('--n <n>', 'samples per class, row and seed', (v) => parseInt(v, 10), 20)
    .option('--baselines <list>', `baselines (${Object.keys(BASELINES).join(', ')}; empty for none)`, list, Object.keys(BASELINES))
    .option('--device <device>', 'where to sample (cpu, cuda); the times are always taken on the CPU', 'cpu')
    .option('--threads <n>', 'intra-op threads (CPU)', (v) => parseInt(v, 10), 2)
    .option('--no-time', 'leave out the 16-image times')
    .option('--retime', 'measure the times again instead of reading the cache')
    .option('--time-scale <x>', 'guidance scale of the timed samples', parseFloat, 4)
    .option('--times-file <file>', 'where the times are cached', path.join(DIR, 'times.json'))
    .option('--times-only', 'only time (and cache) the settings')
    .option('--time-settings <list>', 'time only these settings (ids such as ancestral1000, dpm++2-s20; default all)', list)
    .option('--samples-only', 'only sample (and cache) the rows')
    .option('--no-sample', 'report only the rows and seeds already in the cache (a timed row without any shows its time alone)')
    .option('--judge-steps <n>', 'training steps of each judge', (v) => parseInt(v, 10), 1000)
    .option('--judges-only', 'only train (and cache) the judges')
    .option('--judge-device <device>', 'where the judges train when not cached (they judge on the CPU)', 'cpu')
    .option('--out <file>', 'write the report (markdown) here too')
    .option('--picture <file>', 'PNG of --picture-per-class samples a class (one row per class) of --picture-row, first seed, first scale')
    .option('--picture-row <id>', 'the setting the picture shows (an id such as dpm++2-s20)')
    .option('--picture-per-class <n>', 'samples a class in the picture', (v) => parseInt(v, 10), 8)
    .option('--reference <a,b>', "judged accuracy (%, A,B) of 1,000-step ancestral to check the aims against when the grid has no ancestral1000 row", numbers)
    .option('--reference-scale <x>', 'the guidance scale --reference was taken at', parseFloat, 4)
    .option('--reference-note <text>', 'where --reference comes from', 'given by --reference')
    .parse()
    .opts<Flags>();
  torch.setNumThreads(flags.threads);
  const log = (s: string): void => console.error(s);
  const classes = 10;
  const grid = settings(flags);
  const rowCount = grid.length * flags.scales.length;
  log(`${grid.length} settings x ${flags.scales.length} scales = ${rowCount} rows, seeds ${flags.seeds.join(', ')}, ${flags.n} a class (${classes * flags.n} a row and seed), sampled on ${flags.device}`);

  if (flags.judgesOnly) {
    await judges(flags.judgeSteps, log, flags.judgeDevice);
    return;
  }
  const timed = (setting: Setting): boolean => flags.time && (flags.timeSettings === undefined || flags.timeSettings.includes(setting.id));
  if (flags.timesOnly) {
    for (const setting of grid) if (timed(setting)) await time16(setting, flags, classes, log);
    return;
  }
  if (flags.samplesOnly) {
    for (const setting of grid) for (const scale of flags.scales) for (const seed of flags.seeds) (await samples(setting, scale, seed, flags, classes, log)).dispose();
    return;
  }

  const test = loadFashionMnist({ train: false, padTo: 32 });
  const judged = await judges(flags.judgeSteps, log, flags.judgeDevice);
  const accuracies = judgeAccuracies(judged, test, log);
  const featuresOf = judged[1].features!;
  const realPixels = realSpread(test, classes);
  const realFeatures = realSpread(test, classes, featuresOf);
  const y = labelsFor(classes, flags.n);

  const header = ['sampler', 'model calls', 'scale', 'judged as asked, A %', 'judged as asked, B %', 'spread, B features', 'spread, pixels', `16 images, s (CPU, ${flags.threads} threads)`];
  const rows: string[][] = [];
  const summary: { id: string; scale: number; a: number; b: number; time?: number }[] = [];
  for (const scale of flags.scales) {
    for (const setting of grid) {
      const hitA: number[] = [];
      const hitB: number[] = [];
      const spreadF: number[] = [];
      const spreadP: number[] = [];
      const seeds = flags.seeds.filter((seed) => flags.sample || fs.existsSync(cacheFile(setting, scale, seed, flags.n, flags.device)));
      if (seeds.length === 0 && !(timed(setting) && scale === flags.timeScale)) continue; // --no-sample: neither sampled nor timed
      for (const seed of seeds) {
        const images = await samples(setting, scale, seed, flags, classes, log);
        const x = torch.tidy(() => images.mul(2).sub(1)); // the judges read [-1, 1]
        const [a, b] = judged.map((j) => {
          const labels = j.labels(x);
          const out = labels.toArray() as number[];
          labels.dispose();
          return out.filter((l, i) => l === y[i]).length / out.length;
        });
        hitA.push(a);
        hitB.push(b);
        const features = featuresOf(x);
        spreadF.push(relativeSpread(features, flags.n, realFeatures));
        spreadP.push(relativeSpread(x, flags.n, realPixels));
        features.dispose();
        if (flags.picture && setting.id === (flags.pictureRow ?? grid[0].id) && scale === flags.scales[0] && seed === seeds[0]) {
          const k = Math.min(flags.picturePerClass, flags.n);
          const pick = torch.tensor(Array.from({ length: classes * k }, (_, i) => Math.floor(i / k) * flags.n + (i % k)), { dtype: 'int64' });
          const shown = images.indexSelect(0, pick);
          saveImage(shown, flags.picture, { nrow: k });
          torch.dispose(pick, shown);
        }
        torch.dispose(images, x);
      }
      const time = timed(setting) && (seeds.length > 0 || scale === flags.timeScale) ? await time16(setting, flags, classes, log) : undefined;
      const stepsText = setting.options.steps !== undefined ? `, ${setting.options.steps} steps` : '';
      const seedsText = seeds.length === flags.seeds.length ? '' : seeds.length === 0 ? ' (not sampled)' : ` (seed ${seeds.join(', ')} only)`;
      const figure = (v: number[], digits: number, scale = 1): string => (v.length === 0 ? '-' : meanRange(v, digits, scale));
      rows.push([
        `${setting.label}${stepsText}${seedsText}`,
        String(setting.calls),
        String(scale),
        figure(hitA, 1, 100),
        figure(hitB, 1, 100),
        figure(spreadF, 2),
        figure(spreadP, 2),
        time === undefined ? 'not timed' : time.toFixed(2),
      ]);
      const mean = (v: number[]): number => (v.reduce((p, q) => p + q, 0) / v.length) * 100;
      if (seeds.length > 0) summary.push({ id: setting.id, scale, a: mean(hitA), b: mean(hitB), time });
      log(rows[rows.length - 1].join(' | '));
    }
  }

  // The aims of issue 18: accuracy within 2 points of 1,000-step ancestral (both judges) at <= 20 model calls; 16 images in <= 5 s.
  const aims: string[] = [];
  for (const scale of flags.scales) {
    const row = summary.find((r) => r.id === 'ancestral1000' && r.scale === scale);
    const ref = row ?? (flags.reference && scale === flags.referenceScale ? { a: flags.reference[0], b: flags.reference[1] } : undefined);
    if (!ref) continue;
    const meet = summary.filter((r) => r.scale === scale && r.id !== 'ancestral1000' && grid.find((g) => g.id === r.id)!.calls <= 20 && r.a >= ref.a - 2 && r.b >= ref.b - 2);
    aims.push(
      `Scale ${scale}: 1,000-step ancestral is judged ${ref.a.toFixed(1)}% (A) / ${ref.b.toFixed(1)}% (B)${row ? '' : ` (not in this run: ${flags.referenceNote})`}; ` +
        'within 2 points on both judges at <= 20 model calls: ' +
        (meet.length === 0 ? 'none' : meet.map((r) => `${r.id} (${r.a.toFixed(1)} / ${r.b.toFixed(1)}${r.time === undefined ? '' : `, ${r.time.toFixed(2)} s`})`).join(', ')) +
        '. Aim for time: 16 images in <= 5 s.',
    );
  }
  const full = flags.samplers.length === 6 && flags.steps.length === 5 && flags.scales.length >= 2 && flags.baselines.length === Object.keys(BASELINES).length;
  const gridNote =
    `${full ? 'Grid' : 'Reduced grid (not the full one of issue 18)'}: fast samplers ${flags.samplers.join(', ') || 'none'} at ${flags.steps.join(', ')} steps; ` +
    `baselines ${flags.baselines.join(', ') || 'none'}; scales ${flags.scales.join(', ')}.`;
  const table = [`| ${header.join(' | ')} |`, `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  const report =
    `${table}\n\n${gridNote} ` +
    `${flags.n} samples a class and seed (${classes * flags.n} a row and seed), seeds ${flags.seeds.join(' and ')}: each figure is the mean over the seeds and, in brackets, the lowest and highest seed's. ` +
    `Sampled on ${flags.device}; ${timingNote(flags, grid)} ` +
    `Judges, trained on clean images (${flags.judgeSteps} steps of batch 64 each): ${judged.map((j, k) => `${j.name}, ${(accuracies[k] * 100).toFixed(1)}% on the test set`).join('; ')}.\n\n` +
    `${aims.join('\n')}\n`;
  console.log(report);
  if (flags.out) fs.writeFileSync(flags.out, report);
  test.images.dispose();
  test.labels.dispose();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
