// Soak: many guided samples and many tensor ops in a row leave torch.memory() where it was
// and RSS within 30 MB. The long version (500 samples, 100,000 ops) is bench/soak.ts.
import * as assert from 'assert';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, LinearClassifier, torch } from '../lib';
import { FIXTURES, mixedTensorOp } from './helpers';

const RSS_LIMIT_MB = 30;

async function quiesce(): Promise<void> {
  const gc = (global as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
}

describe('reliability: soak', function () {
  this.timeout(120000);

  it('100 guided samples of a tiny model in a row', async () => {
    const d = new GaussianDiffusion(jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt')), { imageSize: 8, channels: 3, timesteps: 10 });
    torch.manualSeed(0);
    const classifier = new LinearClassifier({ imageSize: 8, channels: 3, numClasses: 4 });
    const y = torch.tensor([1, 2]);
    const run = async (i: number): Promise<void> => {
      const condFn = i % 2 === 0 ? classifierCondFn : classifierGuidance;
      const img = await d.sample({ batchSize: 2, seed: i, condFn, guidanceKwargs: { classifier, y, classifierScale: 2 } });
      img.dispose();
    };
    for (let i = 0; i < 10; i++) await run(i); // warm up allocator and JIT
    await quiesce();
    const before = torch.memory();
    const rss = process.memoryUsage().rss;
    for (let i = 0; i < 100; i++) await run(i);
    await quiesce();
    assert.deepStrictEqual(torch.memory(), before);
    const grown = (process.memoryUsage().rss - rss) / 2 ** 20;
    assert.ok(grown < RSS_LIMIT_MB, `RSS grew ${grown.toFixed(1)} MB`);
  });

  it('20,000 tensor ops in a loop (dispose, tidy and errors mixed)', async () => {
    for (let i = 0; i < 2000; i++) mixedTensorOp(i);
    await quiesce();
    const before = torch.memory();
    const rss = process.memoryUsage().rss;
    for (let i = 0; i < 20000; i++) {
      mixedTensorOp(i);
      // Node 20 frees JS Tensor wrappers (N-API finalizers) from the event loop: yield as a
      // server would (bench/soak.ts --no-yield shows the difference).
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    }
    await quiesce();
    assert.deepStrictEqual(torch.memory(), before);
    const grown = (process.memoryUsage().rss - rss) / 2 ** 20;
    assert.ok(grown < RSS_LIMIT_MB, `RSS grew ${grown.toFixed(1)} MB`);
  });
});
