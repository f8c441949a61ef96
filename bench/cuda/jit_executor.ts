// How TorchScript's executor settings change the classifier gradient (forward + backward) and
// the Unet forward on CUDA: the shipped model's architectures (random weights), batch 16,
// 32x32. Our side: guided and unguided DDIM samples in child processes; the guidance cost per
// step is their difference. Python's side: bench/cuda/jit_executor.py, one variant per process.
//   node dist/bench/cuda/jit_executor.js      (needs a CUDA device; prints markdown)
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Classifier, classifierGuidance, GaussianDiffusion, torch, Unet } from '../../lib';
import { RECIPE } from '../../lib/recipe';
import { BENCH_SRC, PYTHON } from '../common';

const BATCH = 16;
const STEPS = 30;

async function child(guided: boolean): Promise<void> {
  if (process.env.GD_BENCH_THREADS) torch.setNumThreads(Number(process.env.GD_BENCH_THREADS));
  torch.manualSeed(1);
  const unet = new Unet(RECIPE.unet).eval().to('cuda');
  const classifier = new Classifier(RECIPE.classifier).eval().to('cuda');
  const diffusion = new GaussianDiffusion(unet, { imageSize: RECIPE.imageSize, timesteps: 1000, samplingTimesteps: STEPS, betaSchedule: 'cosine' });
  const y = torch.tensor(Array.from({ length: BATCH }, (_, i) => i % 10), { device: 'cuda' });
  const opts = guided ? { condFn: classifierGuidance, guidanceKwargs: { classifier, y, classifierScale: 4 } } : {};
  (await diffusion.sample({ batchSize: BATCH, seed: 1, ...opts })).dispose();
  const t0 = performance.now();
  (await diffusion.sample({ batchSize: BATCH, seed: 2, ...opts })).dispose();
  console.log(JSON.stringify({ msPerStep: (performance.now() - t0) / STEPS }));
}

function ours(guided: boolean, env: Record<string, string>): number {
  const out = execFileSync(process.execPath, [__filename, guided ? 'child-guided' : 'child-unguided'], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return (JSON.parse(out.trim().split('\n').pop()!) as { msPerStep: number }).msPerStep;
}

function main(): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-jit-'));
  torch.manualSeed(1);
  const files = { cls: path.join(dir, 'classifier.pt'), unet: path.join(dir, 'unet.pt') };
  new Classifier(RECIPE.classifier).eval().save(files.cls);
  new Unet(RECIPE.unet).eval().save(files.unet);
  const py = (variant: string): string =>
    execFileSync(PYTHON, [path.join(BENCH_SRC, 'cuda', 'jit_executor.py'), variant, files.cls, files.unet, String(BATCH), String(RECIPE.imageSize)], { encoding: 'utf8' });
  console.log('| Python, TorchScript files, batch 16 | classifier gradient ms | Unet forward ms |');
  console.log('| --- | ---: | ---: |');
  for (const variant of ['default', 'threads-4', 'x-large', 'no-optimizer', 'no-fuser', 'no-gpu-fusion']) {
    try {
      const r = JSON.parse(py(variant).trim().split('\n').pop()!) as { classifierGradMs: number; unetForwardMs: number };
      console.log(`| ${variant} | ${r.classifierGradMs.toFixed(2)} | ${r.unetForwardMs.toFixed(2)} |`);
    } catch (e) {
      console.log(`| ${variant} | failed: ${String(e).split('\n')[0]} | |`);
    }
  }
  console.log('\n| ours, DDIM 30 steps, batch 16 | guided ms/step | unguided ms/step | guidance ms/step |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [name, env] of [['default', {}], ['torch.setNumThreads(4)', { GD_BENCH_THREADS: '4' }]] as const) {
    try {
      const g = ours(true, env);
      const u = ours(false, env);
      console.log(`| ${name} | ${g.toFixed(2)} | ${u.toFixed(2)} | ${(g - u).toFixed(2)} |`);
    } catch (e) {
      console.log(`| ${name} | failed: ${String(e).split('\n')[0]} | | |`);
    }
  }
  try {
    console.log(`\n\`\`\`\n${py('profile')}\`\`\``);
  } catch (e) {
    console.log(`profile failed: ${String(e).split('\n')[0]}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

const mode = process.argv[2];
if (mode === 'child-guided' || mode === 'child-unguided') void child(mode === 'child-guided');
else main();
