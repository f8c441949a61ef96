// The jobs of the worker-pool test (test/worker-threads.test.ts): each is a pure function of
// its seed and of the model files, so a run in a worker must equal a run on the main thread.
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, LinearClassifier, Module, torch, trainDiffusion, Unet } from '../../lib';

export const IMAGE_SIZE = 8;

export interface PoolJob {
  id: number;
  kind: 'native-guided' | 'js-guided' | 'train';
  seed: number;
}

/** 30 guided samples (native classifier guidance and the JS classifierCondFn) and 2 trainings. */
export function poolJobs(): PoolJob[] {
  const jobs: PoolJob[] = [];
  for (let i = 0; i < 30; i++) jobs.push({ id: i, kind: i % 2 === 0 ? 'native-guided' : 'js-guided', seed: 1000 + i });
  jobs.push({ id: 30, kind: 'train', seed: 7 }, { id: 31, kind: 'train', seed: 8 });
  return jobs;
}

/** The tiny Unet and classifier every job loads, written once by the main thread. */
export function writeModels(dir: string): void {
  torch.manualSeed(3);
  new Unet({ dim: 8, dimMults: [1, 2], channels: 3 }).save(path.join(dir, 'unet.pt'));
  new LinearClassifier({ imageSize: IMAGE_SIZE, channels: 3, numClasses: 4 }).save(path.join(dir, 'classifier.pt'));
}

// Training images made without any generator: the global one is shared by every thread.
function trainingData(): ReturnType<typeof torch.tensor> {
  const n = 8 * 3 * IMAGE_SIZE * IMAGE_SIZE;
  return torch.tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.9), { shape: [8, 3, IMAGE_SIZE, IMAGE_SIZE] });
}

// Per thread: the sampling models, loaded once (each load would warm TorchScript up again).
const loaded = new Map<string, { unet: Module; classifier: Module; diffusions: Map<boolean, GaussianDiffusion> }>();

function models(dir: string): { unet: Module; classifier: Module; diffusions: Map<boolean, GaussianDiffusion> } {
  let m = loaded.get(dir);
  if (!m) {
    m = { unet: jit.load(path.join(dir, 'unet.pt')), classifier: jit.load(path.join(dir, 'classifier.pt')), diffusions: new Map() };
    loaded.set(dir, m);
  }
  return m;
}

/** Runs one job; onStep is called as it progresses (each sampling or training step). */
export async function runJob(dir: string, job: PoolJob, onStep: (step: number) => void): Promise<number[]> {
  if (job.kind === 'train') {
    // Trained in place: a fresh copy each time.
    const r = await trainDiffusion(jit.load(path.join(dir, 'unet.pt')), {
      data: trainingData(), steps: 8, batchSize: 4, seed: job.seed, timesteps: 10, onProgress: ({ step }) => onStep(step),
    });
    return Array.from(r.losses);
  }
  const { unet, classifier, diffusions } = models(dir);
  const ddim = job.id % 4 < 2;
  let d = diffusions.get(ddim);
  if (!d) {
    d = new GaussianDiffusion(unet, { imageSize: IMAGE_SIZE, channels: 3, timesteps: 10, samplingTimesteps: ddim ? 5 : 10 });
    diffusions.set(ddim, d);
  }
  const img = await d.sample({
    batchSize: 2,
    seed: job.seed,
    condFn: job.kind === 'native-guided' ? classifierGuidance : classifierCondFn,
    guidanceKwargs: { classifier, y: torch.tensor([1, 3]), classifierScale: 2 },
    onProgress: ({ step }) => onStep(step),
  });
  return Array.from(img.toFloat32Array());
}
