// `npm run e2e:openai`: the paper's training scripts end to end, as a user runs them, on real
// images. Fashion-MNIST is written out as a folder of PNGs (the class as the file name's prefix,
// as their image_datasets.py reads it); then, through the CLI, with the flag strings of their
// scripts:
//   1. `guided-diffusion train --openai "$MODEL_FLAGS $DIFFUSION_FLAGS $TRAIN_FLAGS"` trains a
//      reduced UNetModel (learned sigmas, their hybrid loss) from random weights, and a second
//      run resumes from its checkpoint (their resume_checkpoint: how a released model is fine-tuned);
//   2. `guided-diffusion train-classifier --openai "$CLASSIFIER_FLAGS $TRAIN_FLAGS"` trains a
//      noise-aware EncoderUNetModel on the same folder, with a held-out folder for val_acc;
//   3. the EMA weights are sampled as their classifier_sample.py does (ancestral over the
//      respaced schedule, condition_mean guidance) at several classifier scales, and the judges
//      of eval:guidance (scripts/eval-common.ts, trained on clean Fashion-MNIST) say which class
//      each sample shows.
// Each stage is skipped when its output exists in --work (default .gd-cache/e2e-openai), so a
// rerun only samples and judges again. The report goes to stdout (and --out), the picture to --picture.
// Sampling runs once per --precisions entry: float32, and the UNet's forward under bfloat16
// autocast (guidance in float32), so the two are judged on the same trained weights and seeds.
//   node dist/scripts/e2e-openai.js [--train-images 10000] [--steps 3500,1500] [--classifier-steps 2000] [--scales 0,1,3,10]
//     [--precisions float32,bfloat16] [--n 10] [--out FILE] [--picture FILE]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execSync, spawn } from 'child_process';
import sharp from 'sharp';
import { Command } from 'commander';
import { classifierGuidance, loadFashionMnist, openai, saveImage, Tensor, torch } from '../lib';
import { entropyBits, judgeAccuracies, judges, judgeSamples, ROOT } from './eval-common';

const CLI = path.join(ROOT, 'dist', 'lib', 'cli.js');
const DIFFUSION_FLAGS = '--diffusion_steps 1000 --noise_schedule cosine';
const MODEL_FLAGS = '--image_size 28 --num_channels 32 --num_res_blocks 2 --channel_mult 1,2,2 --attention_resolutions 7 ' +
  '--num_head_channels 32 --learn_sigma True --use_scale_shift_norm True --resblock_updown True --dropout 0.1';
const CLASSIFIER_FLAGS = '--image_size 28 --classifier_width 32 --classifier_depth 2 --classifier_channel_mult 1,2,2 ' +
  '--classifier_attention_resolutions 7 --classifier_use_scale_shift_norm True --classifier_resblock_updown True --classifier_pool attention';

interface Flags {
  work: string;
  trainImages: number;
  valImages: number;
  steps: number[];
  batchSize: number;
  classifierSteps: number;
  classifierBatchSize: number;
  respacing: string;
  scales: number[];
  precisions: Precision[];
  n: number;
  seed: number;
  threads: number;
  judgeSteps: number;
  out?: string;
  picture?: string;
}

const list = (v: string): number[] => v.split(',').filter((s) => s !== '').map(Number);
type Precision = 'float32' | 'bfloat16';
function precisions(v: string): Precision[] {
  const out = v.split(',').filter((s) => s !== '');
  const bad = out.filter((p) => p !== 'float32' && p !== 'bfloat16');
  if (bad.length > 0 || out.length === 0) throw new Error(`--precisions takes float32 and/or bfloat16, got ${JSON.stringify(v)}`);
  return out as Precision[];
}
const log = (s: string): void => console.error(s);

/** Fashion-MNIST images as 28x28 grayscale PNGs named c{label}_{index}.png (class = prefix). */
async function writeFolder(dir: string, train: boolean, limit: number): Promise<void> {
  if (fs.existsSync(path.join(dir, '.complete'))) return;
  fs.mkdirSync(dir, { recursive: true });
  const ds = loadFashionMnist({ train, limit });
  const labels = ds.labels.toArray() as number[];
  const bytes = torch.tidy(() => ds.images.add(1).mul(127.5).round().to('uint8'));
  const flat = bytes.toArray() as number[][][][];
  for (let i = 0; i < labels.length; i++) {
    const pixels = Buffer.from(flat[i][0].flat());
    await sharp(pixels, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(path.join(dir, `c${labels[i]}_${String(i).padStart(5, '0')}.png`));
  }
  torch.dispose([ds.images, ds.labels, bytes]);
  fs.writeFileSync(path.join(dir, '.complete'), `${labels.length}\n`);
  log(`wrote ${labels.length} PNGs to ${dir}`);
}

/** Runs the CLI with args, its stderr teed to logFile; resolves with the stderr text. */
function cli(args: string[], logFile: string): Promise<string> {
  log(`$ guided-diffusion ${args.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'inherit', 'pipe'] });
    let text = '';
    child.stderr.on('data', (d: Buffer) => {
      text += d.toString();
      process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      fs.appendFileSync(logFile, `$ guided-diffusion ${args.join(' ')}\n${text}`);
      if (code === 0) resolve(text);
      else reject(new Error(`guided-diffusion ${args[0]} exited with ${code}`));
    });
  });
}

/** The value of key in each logged line (`step N | key v | ...`), with its step. */
function logged(text: string, key: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const line of text.split('\n')) {
    const step = /^step (\d+) \|/.exec(line);
    const value = new RegExp(`\\| ${key.replace(/[@.]/g, '\\$&')} ([-0-9.e+]+)`).exec(line);
    if (step && value) out.push([Number(step[1]), Number(value[1])]);
  }
  return out;
}

const ckpt = (dir: string, prefix: string, step: number): string => path.join(dir, `${prefix}${String(step).padStart(6, '0')}.pt`);

/** Samples as the judges read them: the channels' mean, padded from 28 to 32 with black ([-1, 1] in, [0, 1] out). */
function forJudges(rgb: Tensor): Tensor {
  return torch.tidy(() => {
    const gray = rgb.mean([1], true).clamp(-1, 1);
    const n = gray.shape[0];
    const side = torch.full([n, 1, 28, 2], -1);
    const wide = torch.cat([side, gray, side], 3);
    const top = torch.full([n, 1, 2, 32], -1);
    return torch.cat([top, wide, top], 2).add(1).div(2);
  });
}

async function main(): Promise<void> {
  const flags = new Command()
    .name('e2e-openai')
    .option('--work <dir>', 'folders, checkpoints and logs', path.join(ROOT, '.gd-cache', 'e2e-openai'))
    .option('--train-images <n>', 'Fashion-MNIST training images written as PNGs', (v) => parseInt(v, 10), 10000)
    .option('--val-images <n>', 'test images written as the held-out folder', (v) => parseInt(v, 10), 1000)
    .option('--steps <a,b>', 'diffusion training steps of the first run, then of the resumed run', list, [3500, 1500])
    .option('--batch-size <n>', "the diffusion model's batch_size", (v) => parseInt(v, 10), 32)
    .option('--classifier-steps <n>', "the classifier's iterations", (v) => parseInt(v, 10), 2000)
    .option('--classifier-batch-size <n>', "the classifier's batch_size", (v) => parseInt(v, 10), 64)
    .option('--respacing <spec>', 'timestep_respacing of the sampler', '100')
    .option('--scales <list>', 'classifier_scale values (0: unguided)', list, [0, 1, 3, 10])
    .option('--precisions <list>', "the UNet forward's precision when sampling: float32, bfloat16 (autocast)", precisions, ['float32', 'bfloat16'])
    .option('--n <n>', 'samples per class and scale', (v) => parseInt(v, 10), 10)
    .option('--seed <n>', 'seed of the training runs and of sampling', (v) => parseInt(v, 10), 1)
    .option('--threads <n>', 'intra-op threads', (v) => parseInt(v, 10), 2)
    .option('--judge-steps <n>', 'training steps of each judge', (v) => parseInt(v, 10), 1000)
    .option('--out <file>', 'write the report (markdown) here too')
    .option('--picture <file>', 'PNG: per class a row of unguided samples and a row at the last scale')
    .parse()
    .opts<Flags>();
  torch.setNumThreads(flags.threads);
  const w = flags.work;
  const [trainDir, valDir, modelDir, classifierDir] = ['train', 'val', 'model', 'classifier'].map((d) => path.join(w, d));
  const logFile = path.join(w, 'cli.log');
  fs.mkdirSync(w, { recursive: true });
  await writeFolder(trainDir, true, flags.trainImages);
  await writeFolder(valDir, false, flags.valImages);

  // 1. The diffusion model: a first run from random weights, then a run resumed from its checkpoint.
  const [s1, s2] = flags.steps;
  const trainFlags = `--lr 5e-4 --batch_size ${flags.batchSize} --ema_rate 0.999 --log_interval 250`;
  const base = ['--data-dir', trainDir, '--out-dir', modelDir, '--threads', String(flags.threads)];
  const runs: string[] = [];
  const stage = async (file: string, args: string[]): Promise<void> => {
    const saved = path.join(w, `${path.basename(file)}.log`);
    if (fs.existsSync(file) && fs.existsSync(saved)) runs.push(fs.readFileSync(saved, 'utf8'));
    else {
      const t0 = Date.now();
      const text = await cli(args, logFile);
      fs.writeFileSync(saved, `${text}wall ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
      runs.push(fs.readFileSync(saved, 'utf8'));
    }
  };
  await stage(ckpt(modelDir, 'model', s1), ['train', '--openai', `${MODEL_FLAGS} ${DIFFUSION_FLAGS} ${trainFlags} --save_interval ${s1}`,
    ...base, '--steps', String(s1), '--seed', String(flags.seed)]);
  await stage(ckpt(modelDir, 'model', s1 + s2), ['train', '--openai', `${MODEL_FLAGS} ${DIFFUSION_FLAGS} ${trainFlags} --save_interval ${s2} ` +
    `--resume_checkpoint ${ckpt(modelDir, 'model', s1)}`, ...base, '--steps', String(s2), '--seed', String(flags.seed + 1)]);

  // 2. The noise-aware classifier (their classifier_train.py's TRAIN_FLAGS, reduced).
  const c = flags.classifierSteps;
  const classifierTrain = `--iterations ${c} --anneal_lr True --batch_size ${flags.classifierBatchSize} --lr 3e-4 --save_interval ${c} ` +
    '--weight_decay 0.05 --log_interval 200 --eval_interval 200';
  await stage(ckpt(classifierDir, 'model', c - 1), ['train-classifier', '--openai', `${CLASSIFIER_FLAGS} ${DIFFUSION_FLAGS} ${classifierTrain}`,
    '--data-dir', trainDir, '--val-data-dir', valDir, '--out-dir', classifierDir, '--threads', String(flags.threads), '--seed', String(flags.seed)]);

  // 3. Sampling as classifier_sample.py, judged.
  const test = loadFashionMnist({ train: false, padTo: 32 });
  const judged = await judges(flags.judgeSteps, log);
  const accuracies = judgeAccuracies(judged, test, log);
  torch.dispose([test.images, test.labels]);
  const sampleFlags = openai.parseFlags(`${MODEL_FLAGS} ${CLASSIFIER_FLAGS} ${DIFFUSION_FLAGS} --timestep_respacing ${flags.respacing}`);
  const model = openai.createModel(sampleFlags);
  model.loadStateDict(path.join(modelDir, `ema_0.999_${String(s1 + s2).padStart(6, '0')}.pt`));
  model.eval();
  const classifier = openai.createClassifier(sampleFlags);
  classifier.loadStateDict(ckpt(classifierDir, 'model', c - 1));
  classifier.eval();

  const classes = 10;
  const y = torch.tensor(Array.from({ length: classes * flags.n }, (_, i) => Math.floor(i / flags.n)), { dtype: 'int64' });
  const wanted = y.toArray() as number[];
  const rows: string[][] = [];
  const both = (f: (k: number) => string): string => judged.map((_, k) => f(k)).join(' / ');
  const picture: Tensor[] = [];
  // Labels the judges gave the first precision's samples, per scale: the other precision's agreement with them.
  const firstLabels = new Map<number, number[][]>();
  for (const precision of flags.precisions) {
    const diffusion = openai.createGaussianDiffusion(model, sampleFlags, precision === 'bfloat16' ? { autocast: 'bfloat16' } : {});
    for (const scale of flags.scales) {
      torch.manualSeed(flags.seed);
      const t0 = performance.now();
      const images = await diffusion.sample({
        sampler: 'ancestral',
        batchSize: y.shape[0],
        ...(scale > 0 ? { condFn: classifierGuidance, guidanceKwargs: { classifier, y, classifierScale: scale } } : {}),
      });
      const wall = (performance.now() - t0) / 1000;
      const gray = forJudges(images);
      images.dispose();
      const { x, got } = judgeSamples(judged, gray);
      const hits = got.map((g) => g.filter((l, i) => l === wanted[i]).length / g.length);
      const first = precision === flags.precisions[0];
      if (first) firstLabels.set(scale, got);
      const reference = firstLabels.get(scale);
      const same = first || !reference ? '' : both((k) => `${((got[k].filter((l, i) => l === reference[k][i]).length / got[k].length) * 100).toFixed(0)}%`);
      rows.push([
        precision,
        scale === 0 ? '0 (unguided)' : String(scale),
        both((k) => `${(hits[k] * 100).toFixed(0)}%`),
        both((k) => entropyBits(got[k], classes).toFixed(2)),
        same,
        `${wall.toFixed(0)} s`,
      ]);
      log(rows[rows.length - 1].join(' | '));
      x.dispose();
      if (first && (scale === 0 || scale === flags.scales[flags.scales.length - 1])) picture.push(gray);
      else gray.dispose();
    }
  }
  if (flags.picture && picture.length === 2) {
    // Per class: its unguided row, then its guided row.
    const grid = torch.tidy(() => torch.cat(Array.from({ length: classes }, (_, k) => picture.map((p) => p.slice(0, k * flags.n, (k + 1) * flags.n))).flat()));
    saveImage(grid, flags.picture, { nrow: flags.n });
    grid.dispose();
  }
  torch.dispose([...picture, y]);
  model.dispose();
  classifier.dispose();

  const curve = (text: string, key: string): string => logged(text, key).map(([s, v]) => `${s}: ${v.toPrecision(3)}`).join(', ');
  const wallOf = (text: string): string => /wall (\d+) s/.exec(text)?.[1] ?? '?';
  const commit = execSync('git rev-parse --short HEAD', { cwd: ROOT }).toString().trim();
  const header = ['UNet forward', 'classifier_scale', 'judged as the requested class (A / B)', 'class entropy, bits, max 3.32 (A / B)',
    `same class as ${flags.precisions[0]}'s sample of the same seed (A / B)`, `${classes * flags.n} samples: wall`];
  const report = [
    `Commit ${commit}, ${flags.threads} intra-op thread(s) on ${os.cpus()[0]?.model ?? '?'}, ${os.cpus().length} cores. Training folder: the first ${flags.trainImages} ` +
      `Fashion-MNIST training images as 28x28 PNGs (read as RGB, as their image_datasets.py), held-out folder: the first ${flags.valImages} test images.`,
    '',
    `MODEL_FLAGS="${MODEL_FLAGS}"  `,
    `DIFFUSION_FLAGS="${DIFFUSION_FLAGS}"  `,
    `TRAIN_FLAGS="${trainFlags}"  `,
    `CLASSIFIER_FLAGS="${CLASSIFIER_FLAGS}"  `,
    `CLASSIFIER_TRAIN_FLAGS="${classifierTrain}"`,
    '',
    `Diffusion model, run 1 (${s1} steps from random weights, ${wallOf(runs[0])} s), loss at each log_interval: ${curve(runs[0], 'loss')}.`,
    '',
    `Run 2, resumed from model${String(s1).padStart(6, '0')}.pt (${s2} steps, ${wallOf(runs[1])} s): ${curve(runs[1], 'loss')}.`,
    '',
    `Classifier (${c} steps, ${wallOf(runs[2])} s), val_acc@1 on noised held-out images: ${curve(runs[2], 'val_acc@1')}.`,
    '',
    `Sampling: EMA (0.999) weights after ${s1 + s2} steps, ancestral over the schedule respaced to ${flags.respacing} steps, clip_denoised, ` +
      `the UNet's forward in ${flags.precisions.map((p) => (p === 'bfloat16' ? 'bfloat16 autocast (guidance in float32)' : p)).join(' and in ')}, ` +
      `${flags.n} samples per class, seed ${flags.seed}; judged on the channels' mean padded to 32x32. Judges, trained on clean images ` +
      `(${flags.judgeSteps} steps each): ${judged.map((j, k) => `${j.name}, ${(accuracies[k] * 100).toFixed(1)}% on the test set`).join('; ')}.`,
    '',
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n');
  console.log(report);
  if (flags.out) fs.writeFileSync(flags.out, report);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
