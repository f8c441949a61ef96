// JS condFn against native guidance in one process: the shipped model, guided DDIM, batch 16,
// samples alternating between no guidance, a JS condFn returning zeros (the hop alone), the JS
// classifierCondFn and the native classifierGuidance, so that drift of a shared machine hits all
// four alike (separate child processes, as in `npm run bench`, differ by more than the hop).
//   node dist/bench/js_hop.js [--rounds N] [--steps N] [--threads N]
import { classifierCondFn, classifierGuidance, CondFn, GaussianDiffusion, torch } from '../lib';
import { median } from './common';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  const rounds = flag('rounds', 5);
  const steps = flag('steps', 20);
  torch.setNumThreads(flag('threads', 2));
  const { diffusion, classifier } = GaussianDiffusion.pretrained('fashion-mnist', { samplingTimesteps: steps });
  const y = torch.tensor(Array.from({ length: 16 }, (_, i) => i % 10));
  const kwargs = { classifier, y, classifierScale: 4 };
  const variants: [string, CondFn<typeof kwargs> | undefined][] = [
    ['no guidance', undefined],
    ['JS condFn returning zeros', (x) => torch.zerosLike(x)],
    ['JS classifierCondFn', classifierCondFn],
    ['native classifierGuidance', classifierGuidance],
  ];
  const times = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  for (let round = -1; round < rounds; round++) {
    for (const [name, condFn] of variants) {
      const t0 = performance.now();
      const img = await diffusion.sample({ batchSize: 16, seed: 1, ...(condFn ? { condFn, guidanceKwargs: kwargs } : {}) });
      img.dispose();
      if (round >= 0) times.get(name)!.push((performance.now() - t0) / steps); // round -1 warms up
    }
  }
  const ms = (name: string): number => median(times.get(name)!);
  console.log(`| shipped model, DDIM ${steps} steps, batch 16, ${torch.getNumThreads()} threads, median of ${rounds} | ms/step | min..max |`);
  console.log('| --- | ---: | ---: |');
  for (const [name] of variants) {
    const t = times.get(name)!;
    console.log(`| ${name} | ${ms(name).toFixed(1)} | ${Math.min(...t).toFixed(1)}..${Math.max(...t).toFixed(1)} |`);
  }
  const js = ms('JS classifierCondFn');
  const native = ms('native classifierGuidance');
  console.log(`\nJS classifierCondFn / native classifierGuidance: ${(js / native).toFixed(3)}; the hop alone: ${(ms('JS condFn returning zeros') - ms('no guidance')).toFixed(2)} ms/step`);
}

void main();
