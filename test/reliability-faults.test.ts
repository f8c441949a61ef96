// Faults while a sample runs: what it uses is disposed, it is aborted, many run at once, the
// process exits under it. None of these may crash, leak, or change the numbers.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, LinearClassifier, torch, Tensor, Unet } from '../lib';
import type { ClassifierGuidanceKwargs, SampleOptions } from '../lib';
import { assertClose, FIXTURES, maxAbsDiff } from './helpers';

const TOY = path.join(FIXTURES, 'diffusion', 'toy_model.pt');
const LIB = path.resolve(__dirname, '..', 'lib');

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

function tinyUnet(): Unet {
  torch.manualSeed(3);
  return new Unet({ dim: 8, dimMults: [1, 2], channels: 3 }).eval();
}

// Runs `body` in a fresh node process with the library loaded as `lib` and a toy diffusion as `d`.
function child(body: string): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const script = `
    const lib = require(${JSON.stringify(LIB)});
    const { torch, jit, GaussianDiffusion, Unet, classifierGuidance, classifierCondFn, LinearClassifier } = lib;
    const toy = jit.load(${JSON.stringify(TOY)});
    const d = new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: 200 });
    ${body}
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function assertCleanExit(r: ReturnType<typeof child>, stdout: RegExp): void {
  assert.strictEqual(r.signal, null, `killed by ${r.signal}; stderr: ${r.stderr}`);
  assert.strictEqual(r.status, 0, `exit code ${r.status}; stderr: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /Aborted|Segmentation|terminate called|FATAL|core dumped|uncaught/i);
  assert.match(r.stdout, stdout);
}

describe('reliability: faults', () => {
  it('disposing the model, classifier and y of a running sample changes nothing', async () => {
    const kwargs = (): { classifier: LinearClassifier; y: Tensor; classifierScale: number } => {
      torch.manualSeed(5);
      return { classifier: new LinearClassifier({ imageSize: 16, channels: 3, numClasses: 4 }), y: torch.tensor([1, 3]), classifierScale: 2 };
    };
    const reference = await new GaussianDiffusion(tinyUnet(), { imageSize: 16, timesteps: 20 }).sample({
      batchSize: 2, seed: 11, condFn: classifierGuidance, guidanceKwargs: kwargs(),
    });
    const unet = tinyUnet();
    const d = new GaussianDiffusion(unet, { imageSize: 16, timesteps: 20 });
    const k = kwargs();
    let disposedAt = -1;
    const img = await d.sample({
      batchSize: 2, seed: 11, condFn: classifierGuidance, guidanceKwargs: k,
      onProgress: ({ step }) => {
        if (step === 2) {
          unet.dispose();
          k.classifier.dispose();
          k.y.dispose();
          disposedAt = step;
        }
      },
    });
    assert.strictEqual(disposedAt, 2);
    assert.strictEqual(maxAbsDiff(img.toFloat32Array(), reference.toFloat32Array()), 0);
    // The diffusion keeps its own reference to the model: it samples again.
    const again = await d.sample({ batchSize: 1, seed: 1 });
    assert.deepStrictEqual(again.shape, [1, 3, 16, 16]);
    assert.throws(() => unet.forward(torch.zeros([1, 3, 16, 16]), torch.tensor([0])), { message: 'Module was disposed and cannot be used' });
  });

  it('disposing the classifier a JS condFn uses fails that step cleanly', async () => {
    const d = new GaussianDiffusion(jit.load(TOY), { imageSize: 16, channels: 3, timesteps: 20 });
    const classifier = new LinearClassifier({ imageSize: 16, channels: 3, numClasses: 4 });
    const before = torch.memory().tensors;
    await assert.rejects(
      d.sample({
        batchSize: 2, condFn: classifierCondFn, guidanceKwargs: { classifier, y: torch.tensor([0, 1]) },
        onProgress: ({ step }) => { if (step === 3) classifier.dispose(); },
      }),
      { message: 'Module was disposed and cannot be used' },
    );
    await settle();
    assert.ok(torch.memory().tensors <= before + 1, `${torch.memory().tensors - before} tensors left`); // + the y above, until GC
  });

  it('disposing the diffusion model with the GC while sampling changes nothing', async function () {
    const gc = (global as { gc?: () => void }).gc;
    if (!gc) {
      // Without a collection the test proves nothing: say so rather than pass.
      this.test!.title += ' [SKIPPED: run node with --expose-gc]';
      this.skip();
    }
    let d: GaussianDiffusion | null = new GaussianDiffusion(jit.load(TOY), { imageSize: 8, channels: 3, timesteps: 50 });
    const reference = await d.sample({ batchSize: 1, seed: 8 });
    const p = d.sample({ batchSize: 1, seed: 8 });
    d = null;
    gc();
    await settle();
    gc();
    const img = await p;
    assert.strictEqual(maxAbsDiff(img.toFloat32Array(), reference.toFloat32Array()), 0);
  });

  it('aborting mid-sample frees its tensors (sync and async condFn, native guidance)', async () => {
    const d = new GaussianDiffusion(jit.load(TOY), { imageSize: 16, channels: 3, timesteps: 200 });
    const classifier = new LinearClassifier({ imageSize: 16, channels: 3, numClasses: 4 });
    const y = torch.tensor([0, 1]);
    const kinds: [string, object][] = [
      ['sync condFn', { condFn: (x: Tensor) => x.mul(-0.1) }],
      ['async condFn', { condFn: async (x: Tensor) => { await new Promise((r) => setTimeout(r, 2)); return x.mul(-0.1); } }],
      ['classifierCondFn', { condFn: classifierCondFn, guidanceKwargs: { classifier, y } }],
      ['classifierGuidance', { condFn: classifierGuidance, guidanceKwargs: { classifier, y } }],
      ['no guidance', {}],
    ];
    for (const [what, opts] of kinds) {
      await settle();
      const before = torch.memory();
      const controller = new AbortController();
      const p = d.sample({ batchSize: 2, signal: controller.signal, ...opts, onProgress: ({ step }) => { if (step === 5) controller.abort(); } });
      await assert.rejects(p, { name: 'AbortError', message: 'This operation was aborted' }, what);
      await settle();
      assert.deepStrictEqual(torch.memory(), before, what);
    }
  });

  it('8 concurrent samples, each with its own seed, give the results of running them one by one', async () => {
    const unet = tinyUnet();
    const d = new GaussianDiffusion(unet, { imageSize: 16, timesteps: 30, samplingTimesteps: 10 });
    torch.manualSeed(1);
    const classifier = new LinearClassifier({ imageSize: 16, channels: 3, numClasses: 4 });
    const y = torch.tensor([2, 0]);
    const options = (i: number): SampleOptions<ClassifierGuidanceKwargs> => {
      const seed = 100 + i;
      switch (i % 4) {
        case 0: return { batchSize: 2, seed };
        case 1: return { batchSize: 2, seed, condFn: (x: Tensor) => x.mul(-0.05) };
        case 2: return { batchSize: 2, seed, condFn: classifierCondFn, guidanceKwargs: { classifier, y, classifierScale: 3 } };
        default: return { batchSize: 2, seed, condFn: classifierGuidance, guidanceKwargs: { classifier, y, classifierScale: 3 } };
      }
    };
    const serial: Float32Array[] = [];
    for (let i = 0; i < 8; i++) serial.push((await d.sample(options(i))).toFloat32Array());
    const together = await Promise.all(Array.from({ length: 8 }, (_, i) => d.sample(options(i))));
    together.forEach((img, i) => assertClose(img.toFloat32Array(), serial[i], 0, `concurrent sample ${i}`)); // the same kernels: bit for bit
    for (let i = 1; i < 8; i++) assert.ok(maxAbsDiff(serial[0], serial[i]) > 1e-3, `sample ${i} equals sample 0`);
  });

  it('without --expose-gc the GC test is reported as skipped, with the reason, not as passed', () => {
    const r = spawnSync(process.execPath, [
      require.resolve('mocha/bin/mocha.js'), '--no-config', '--reporter', 'json', '--timeout', '60000',
      '--grep', 'with the GC while sampling', __filename,
    ], { encoding: 'utf8', timeout: 60000 });
    assert.strictEqual(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
    assert.strictEqual(report.stats.passes, 0);
    assert.strictEqual(report.stats.pending, 1);
    assert.match(report.pending[0].title, /\[SKIPPED: run node with --expose-gc\]$/);
  });

  it('requiring the addon again (a cleared require cache) gives the same exports', () => {
    const file = Object.keys(require.cache).find((k) => k.endsWith('guided_diffusion.node'))!;
    const first = require.cache[file]!.exports;
    delete require.cache[file];
    const again = require(file);
    assert.strictEqual(again, first);
    assert.deepStrictEqual(torch.ones([2]).add(again.ones([2])).toArray(), [2, 2]);
  });

  describe('process.exit during a sample', function () {
    this.timeout(120000);

    it('from onProgress, with samples in flight', () => {
      const r = child(`
        for (let i = 0; i < 3; i++) d.sample({ batchSize: 2, condFn: (x) => x.mul(-0.1) }).catch(() => {});
        d.sample({ batchSize: 2, onProgress: ({ step }) => { if (step === 5) { console.log('exiting at', step); process.exit(0); } } });
      `);
      assertCleanExit(r, /exiting at 5/);
    });

    it('from inside a condFn, while the sampling thread waits for it', () => {
      const r = child(`
        let n = 0;
        d.sample({ batchSize: 2, condFn: (x) => { if (++n === 4) { console.log('exiting in condFn'); process.exit(0); } return x.mul(-0.1); } });
      `);
      assertCleanExit(r, /exiting in condFn/);
    });

    it('from an async condFn and with native classifier guidance running beside it', () => {
      const r = child(`
        const classifier = new LinearClassifier({ imageSize: 8, channels: 3, numClasses: 3 });
        d.sample({ batchSize: 2, condFn: classifierGuidance, guidanceKwargs: { classifier, y: torch.tensor([0, 2]) } });
        d.sample({ batchSize: 2, condFn: classifierCondFn, guidanceKwargs: { classifier, y: torch.tensor([0, 2]) } });
        let n = 0;
        d.sample({ batchSize: 2, condFn: async (x) => { if (++n === 6) setImmediate(() => { console.log('exiting'); process.exit(0); }); return x.mul(0); } });
      `);
      assertCleanExit(r, /exiting/);
    });

    it('while a long model forward runs on the sampling thread', () => {
      const r = child(`
        const unet = new Unet({ dim: 32, dimMults: [1, 2, 4], channels: 3 }).eval();
        const big = new GaussianDiffusion(unet, { imageSize: 64, timesteps: 100 });
        big.sample({ batchSize: 4 });
        setTimeout(() => { console.log('exiting'); process.exit(0); }, 300);
      `);
      assertCleanExit(r, /exiting/);
    });

    it('while training runs on a worker thread (the exit ends the run after its step, within seconds)', () => {
      const started = Date.now();
      const r = child(`
        const data = torch.randn([64, 1, 16, 16]);
        lib.trainDiffusion(new Unet({ dim: 8, dimMults: [1, 2], channels: 1 }), { data, steps: 1000000, batchSize: 8 });
        lib.trainClassifier(new lib.Classifier({ imageSize: 16, channels: 1, numClasses: 2, dim: 8 }), { data, labels: torch.zeros([64], { dtype: 'int64' }), steps: 1000000 });
        setTimeout(() => { console.log('exiting'); process.exit(0); }, 1000);
      `);
      assertCleanExit(r, /exiting/);
      assert.ok(Date.now() - started < 30000, `took ${Date.now() - started} ms`);
    });

    it('a process that just ends with a never-settling condFn pending exits once stepTimeoutMs fires', () => {
      const r = child(`
        d.sample({ batchSize: 1, stepTimeoutMs: 200, condFn: () => new Promise(() => {}) }).catch((e) => console.log('rejected:', e.message));
      `);
      assertCleanExit(r, /rejected: condFn at step 0 \(t=199\) did not settle within 200 ms/);
    });
  });
});
