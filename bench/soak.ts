// node --expose-gc dist/bench/soak.js [--samples 500] [--ops 100000] [--no-yield]
//
// The long soak of test/reliability-soak.test.ts: guided samples of a tiny model in a row
// (JS classifierCondFn and native classifierGuidance alternating), then tensor ops in a loop
// (dispose, tidy and error paths mixed). Prints torch.memory() and RSS before and after each
// phase and exits 1 when tensors are left behind or RSS grew by 30 MB or more.
//
// The op loop yields to the event loop every 1,000 iterations, as a server does: Node 20 runs
// N-API finalizers (which free each JS Tensor's wrapper, ~180 bytes of native memory, even
// after dispose()) from the event loop, so a loop that never yields holds every wrapper it
// made until it ends. --no-yield shows that: 100,000 iterations peak about 75 MB higher, and
// glibc keeps the freed memory.
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, LinearClassifier, torch } from '../lib';
import { mixedTensorOp } from '../test/helpers';

const RSS_LIMIT_MB = 30;
const ROOT = path.resolve(__dirname, '..', '..');

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

async function quiesce(): Promise<void> {
  const gc = (global as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
}

interface Phase {
  name: string;
  count: number;
  seconds: number;
  tensorsBefore: number;
  tensorsAfter: number;
  bytesBefore: number;
  bytesAfter: number;
  rssGrowthMb: number;
}

async function measure(name: string, count: number, warmup: number, step: (i: number) => unknown, yieldEvery = 0): Promise<Phase> {
  for (let i = 0; i < warmup; i++) await step(i);
  await quiesce();
  const before = torch.memory();
  const rss = process.memoryUsage().rss;
  const started = Date.now();
  for (let i = 0; i < count; i++) {
    await step(i);
    if (yieldEvery && i % yieldEvery === yieldEvery - 1) await new Promise((r) => setImmediate(r));
    if ((i + 1) % Math.max(1, Math.floor(count / 10)) === 0) {
      process.stderr.write(`\r${name}: ${i + 1}/${count}, RSS +${((process.memoryUsage().rss - rss) / 2 ** 20).toFixed(1)} MB   `);
    }
  }
  const seconds = (Date.now() - started) / 1000;
  await quiesce();
  process.stderr.write('\n');
  const after = torch.memory();
  return {
    name,
    count,
    seconds,
    tensorsBefore: before.tensors,
    tensorsAfter: after.tensors,
    bytesBefore: before.bytes,
    bytesAfter: after.bytes,
    rssGrowthMb: (process.memoryUsage().rss - rss) / 2 ** 20,
  };
}

async function main(): Promise<void> {
  const samples = arg('samples', 500);
  const ops = arg('ops', 100000);
  if (!(global as { gc?: () => void }).gc) process.stderr.write('(run with node --expose-gc for exact numbers)\n');

  const d = new GaussianDiffusion(jit.load(path.join(ROOT, 'test', 'fixtures', 'diffusion', 'toy_model.pt')), { imageSize: 8, channels: 3, timesteps: 10 });
  torch.manualSeed(0);
  const classifier = new LinearClassifier({ imageSize: 8, channels: 3, numClasses: 4 });
  const y = torch.tensor([1, 2]);
  const sample = async (i: number): Promise<void> => {
    const condFn = i % 2 === 0 ? classifierCondFn : classifierGuidance;
    const img = await d.sample({ batchSize: 2, seed: i, condFn, guidanceKwargs: { classifier, y, classifierScale: 2 } });
    img.dispose();
  };

  const phases = [
    await measure(`${samples} guided samples (toy model 8x8, 10 steps, batch 2)`, samples, 10, sample),
    await measure(`${ops} iterations of tensor ops (about ${ops * 4} ops)`, ops, 2000, mixedTensorOp, process.argv.includes('--no-yield') ? 0 : 1000),
  ];
  let ok = true;
  for (const p of phases) {
    const leak = p.tensorsAfter !== p.tensorsBefore || p.bytesAfter !== p.bytesBefore;
    const grew = p.rssGrowthMb >= RSS_LIMIT_MB;
    ok = ok && !leak && !grew;
    console.log(
      `${p.name}: ${p.seconds.toFixed(1)} s; torch.memory() ${p.tensorsBefore} -> ${p.tensorsAfter} tensors, ` +
        `${p.bytesBefore} -> ${p.bytesAfter} bytes; RSS ${p.rssGrowthMb >= 0 ? '+' : ''}${p.rssGrowthMb.toFixed(1)} MB` +
        `${leak ? '  LEAK' : ''}${grew ? `  RSS over ${RSS_LIMIT_MB} MB` : ''}`,
    );
  }
  process.exit(ok ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
