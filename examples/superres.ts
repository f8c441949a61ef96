// DPS super-resolution (Chung et al. 2022) with the shipped model: from an 8x8 average-pooled
// Fashion-MNIST test image back to 32x32, by guiding DDIM with the loss ||avgpool(x0) - y||^2 on
// the predicted clean image, its gradient divided by the residual's norm (gradientNorm, DPS's
// zeta / ||y - A(x0)||). Run: npm run example:superres
import * as path from 'path';
import { loadFashionMnist, loadPretrained, saveImage, Tensor, torch } from '../lib';

export interface SuperresOptions {
  /** Held-out test images to restore (the first n of the test set). */
  n: number;
  ddimSteps: number;
  /** DDIM's eta: 0 deterministic, 1 as noisy as ancestral steps (DPS's sampler). */
  eta: number;
  guidanceScale: number;
  /** Guide only steps with t in [tLo, tHi]. */
  guidanceInterval?: [number, number];
  seed: number;
}

export const SUPERRES_DEFAULTS: SuperresOptions = { n: 8, ddimSteps: 10, eta: 1, guidanceScale: 3, guidanceInterval: [0, 998], seed: 1 };

/** The measurement A(x): 4x4 average pooling, [B, C, 32, 32] -> [B, C, 8, 8]. */
export function avgPool4(x: Tensor): Tensor {
  const [b, c, h, w] = x.shape;
  return torch.tidy(() => x.reshape([b, c, h / 4, 4, w / 4, 4]).mean([3, 5]));
}

/** ||A(x) - y||^2 per image. */
export function measurementLoss(x: Tensor, y: Tensor): Tensor {
  return torch.tidy(() => avgPool4(x).sub(y).square().flatten(1).sum(1));
}

/** PSNR (dB) of each image of a against b, both in [0, 1]. */
export function psnr(a: Tensor, b: Tensor): number[] {
  const mse = torch.tidy(() => a.sub(b).square().flatten(1).mean(1).toArray() as number[]);
  return mse.map((m) => 10 * Math.log10(1 / m));
}

/** Test images in [-1, 1], their 8x8 measurements, and unguided and DPS-guided samples in [0, 1]. */
export async function superres(o: SuperresOptions) {
  const test = loadFashionMnist({ train: false, padTo: 32, limit: o.n });
  const x = test.images;
  test.labels.dispose();
  const y = avgPool4(x);
  const { diffusion } = loadPretrained('fashion-mnist', { samplingTimesteps: o.ddimSteps, ddimSamplingEta: o.eta });
  const unguided = await diffusion.sample({ batchSize: o.n, seed: o.seed });
  const start = Date.now();
  const guided = await diffusion.sample({
    batchSize: o.n,
    seed: o.seed,
    guidanceInput: 'x0',
    guidanceScale: o.guidanceScale,
    guidanceInterval: o.guidanceInterval,
    gradientNorm: true,
    condFn: (x0: Tensor) => measurementLoss(x0, y),
  });
  return { x, y, unguided, guided, seconds: (Date.now() - start) / 1000 };
}

async function main(): Promise<void> {
  // Other settings as JSON: npm run example:... -- '{"guidanceScale": 4}'
  const settings = JSON.parse(process.argv[2] ?? '{}');
  const unknown = Object.keys(settings).filter((k) => !(k in SUPERRES_DEFAULTS));
  if (unknown.length > 0) throw new Error(`unknown setting ${unknown.join(', ')}; known: ${Object.keys(SUPERRES_DEFAULTS).join(', ')}`);
  const o = { ...SUPERRES_DEFAULTS, ...settings };
  const r = await superres(o);
  const toUnit = (t: Tensor): Tensor => t.add(1).div(2).clamp(0, 1);
  const up = (mode: 'nearest' | 'bicubic'): Tensor => torch.tidy(() => toUnit(torch.nn.functional.interpolate(r.y, { size: [32, 32], mode })));
  const [nearest, bicubic, original] = [up('nearest'), up('bicubic'), toUnit(r.x)];
  const mean = (v: number[]): string => (v.reduce((a, b) => a + b, 0) / v.length).toFixed(2);
  console.log(`${o.n} test images, 8x8 average-pooled; DDIM ${o.ddimSteps} steps, eta ${o.eta}, seed ${o.seed}; guidanceScale ${o.guidanceScale}, gradientNorm, guidanceInterval ${JSON.stringify(o.guidanceInterval)}; DPS took ${r.seconds.toFixed(1)} s`);
  for (const [name, img] of [['nearest', nearest], ['bicubic', bicubic], ['unguided', r.unguided], ['DPS', r.guided]] as const) {
    const fit = torch.tidy(() => (measurementLoss(img.mul(2).sub(1), r.y).toArray() as number[]).map(Math.sqrt));
    console.log(`${name.padEnd(8)} PSNR vs the original ${mean(psnr(img, original))} dB (per image ${psnr(img, original).map((p) => p.toFixed(1)).join(' ')}); ||avgpool(x) - y|| ${mean(fit)}`);
  }
  // Each row: the 8x8 input (nearest) | bicubic | DPS | the original.
  const rows = torch.stack([nearest, bicubic, r.guided, original], 1).reshape([o.n * 4, 1, 32, 32]);
  const file = path.resolve(__dirname, '..', '..', 'examples', 'superres.png');
  saveImage(rows, file, { nrow: 4 });
  console.log(`${file}: per row the 8x8 input | bicubic | DPS | original`);
}

if (require.main === module) main().catch((err) => { console.error(err); process.exit(1); });
