// Bad condFn results and guidanceKwargs: sample() rejects with a message naming the step (or
// with the very value the condFn threw) and nothing is left behind. Completes the cases of
// test/sampling.test.ts (throws, undefined, a number, a wrong shape, NaN, a stalled Promise).
import * as assert from 'assert';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, LinearClassifier, torch, Tensor } from '../lib';
import { assertClose, FIXTURES, maxAbsDiff } from './helpers';

const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
const REL = path.join(FIXTURES, 'reliability');
const REF = path.join(FIXTURES, 'reference-case');

function small(extra: object = {}): GaussianDiffusion {
  return new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: 10, ...extra });
}

// N-API finalizers and late Promise callbacks run from the event loop.
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

describe('reliability: condFn', () => {
  let baseline: number;
  beforeEach(async () => {
    // Earlier test files leave tensors to the GC: collect them first, or a collection during
    // the test would make the count drop below a baseline that included them.
    const gc = (global as { gc?: () => void }).gc;
    if (gc) {
      gc();
      await settle();
      gc();
    }
    baseline = torch.memory().tensors;
  });
  afterEach(async () => {
    await settle();
    assert.strictEqual(torch.memory().tensors, baseline, 'tensors left behind');
  });

  it('returns a disposed tensor', async () => {
    await assert.rejects(
      small().sample({ batchSize: 1, condFn: (x) => { const g = torch.zerosLike(x); g.dispose(); return g; } }),
      { message: 'condFn at step 0 (t=9) returned a disposed Tensor' },
    );
  });

  it('disposes its input and returns it', async () => {
    await assert.rejects(small().sample({ batchSize: 1, condFn: (x) => { x.dispose(); return x; } }), {
      message: 'condFn at step 0 (t=9) returned a disposed Tensor',
    });
  });

  it('returns its input x (a zero-cost gradient) and keeps working', async () => {
    const img = await small().sample({ batchSize: 1, seed: 1, condFn: (x) => x });
    assert.deepStrictEqual(img.shape, [1, 3, 8, 8]);
    img.dispose();
  });

  it('returns another dtype: converted, as the reference takes gradient.float()', async () => {
    const d = small();
    const a = await d.sample({ batchSize: 2, seed: 4, condFn: (x) => torch.fullLike(x, 0.1) });
    const b = await d.sample({ batchSize: 2, seed: 4, condFn: (x) => torch.fullLike(x, 0.1, { dtype: 'float64' }) });
    const c = await d.sample({ batchSize: 2, seed: 4, condFn: (x) => torch.zerosLike(x, { dtype: 'int64' }) });
    const plain = await d.sample({ batchSize: 2, seed: 4 });
    assert.strictEqual(b.dtype, 'float32');
    assert.strictEqual(maxAbsDiff(a.toFloat32Array(), b.toFloat32Array()), 0);
    assert.strictEqual(maxAbsDiff(c.toFloat32Array(), plain.toFloat32Array()), 0);
    torch.dispose([a, b, c, plain]);
  });

  it('returns a tensor on another device (CUDA only)', async function () {
    if (!torch.cuda.isAvailable()) this.skip();
    const d = small();
    const a = await d.sample({ batchSize: 1, seed: 2, condFn: (x) => torch.onesLike(x) });
    const b = await d.sample({ batchSize: 1, seed: 2, condFn: (x) => torch.onesLike(x).cuda() });
    assertClose(a.toFloat32Array(), b.toFloat32Array(), 1e-6, 'CUDA gradient');
    torch.dispose([a, b]);
  });

  it('returns an array, an object, a string, null', async () => {
    const d = small();
    const held: Tensor[] = [];
    await assert.rejects(d.sample({ batchSize: 1, condFn: (x) => { held.push(torch.zerosLike(x)); return held as never; } }), {
      message: 'condFn at step 0 (t=9) returned an array; expected a Tensor',
    });
    torch.dispose(held); // an array's tensors stay the caller's
    await assert.rejects(d.sample({ batchSize: 1, condFn: () => ({ grad: 1 }) as never }), {
      message: 'condFn at step 0 (t=9) returned an object; expected a Tensor',
    });
    await assert.rejects(d.sample({ batchSize: 1, condFn: () => 'g' as never }), { message: "condFn at step 0 (t=9) returned 'g'; expected a Tensor" });
    await assert.rejects(d.sample({ batchSize: 1, condFn: () => null as never }), { message: 'condFn at step 0 (t=9) returned null; expected a Tensor' });
  });

  it('a Promise that resolves to a non-tensor, late in the sample', async () => {
    let calls = 0;
    await assert.rejects(
      small().sample({ batchSize: 1, condFn: async (x) => (++calls === 4 ? (undefined as never) : torch.zerosLike(x)) }),
      { message: 'condFn at step 3 (t=6) returned undefined; expected a Tensor' },
    );
  });

  it('a Promise that rejects with a non-Error value rejects sample() with that value', async () => {
    await assert.rejects(small().sample({ batchSize: 1, condFn: () => Promise.reject('plain string') }), (err) => err === 'plain string');
    const obj = { code: 42 };
    await assert.rejects(small().sample({ batchSize: 1, condFn: () => Promise.reject(obj) }), (err) => err === obj);
    await assert.rejects(small().sample({ batchSize: 1, condFn: () => Promise.reject(undefined) }), (err) => err === undefined);
  });

  it('throws a non-Error value', async () => {
    await assert.rejects(small().sample({ batchSize: 1, condFn: () => { throw 'thrown string'; } }), (err) => err === 'thrown string');
    await assert.rejects(small().sample({ batchSize: 1, condFn: () => { throw null; } }), (err) => err === null);
    const withBadMessage = Object.defineProperty(new Error('x'), 'message', { get() { throw new Error('getter'); } });
    await assert.rejects(small().sample({ batchSize: 1, condFn: () => { throw withBadMessage; } }), (err) => err === withBadMessage);
  });

  it('a thenable that settles twice, or resolves and rejects', async () => {
    const twice = (x: Tensor): never =>
      ({ then: (ok: (v: unknown) => void, fail: (e: unknown) => void) => { ok(torch.zerosLike(x)); ok(torch.zerosLike(x)); fail(new Error('late')); } }) as never;
    const img = await small().sample({ batchSize: 1, condFn: twice });
    img.dispose();
    const throwsInThen = (): never => ({ then: () => { throw new Error('then threw'); } }) as never;
    await assert.rejects(small().sample({ batchSize: 1, condFn: throwsInThen }), { message: 'then threw' });
  });

  it('a Promise that settles after stepTimeoutMs cut it off', async () => {
    const d = small();
    let late: Promise<void> | undefined;
    await assert.rejects(
      d.sample({
        batchSize: 1,
        stepTimeoutMs: 50,
        condFn: (x) => {
          // x is sample()'s: gone once the step is cut off. The late result is disposed.
          const g = torch.zerosLike(x);
          const p = new Promise<Tensor>((resolve) => setTimeout(() => resolve(g), 150));
          late = p.then(() => undefined);
          return p;
        },
      }),
      { message: 'condFn at step 0 (t=9) did not settle within 50 ms (stepTimeoutMs)' },
    );
    await late;
  });

  it('a condFn that never settles: its x and t are released when the sample ends', async () => {
    await assert.rejects(small().sample({ batchSize: 1, stepTimeoutMs: 30, condFn: () => new Promise<Tensor>(() => undefined) }), /did not settle within 30 ms/);
    const controller = new AbortController();
    const p = small().sample({ batchSize: 1, signal: controller.signal, condFn: () => new Promise<Tensor>(() => undefined) });
    setTimeout(() => controller.abort(), 30);
    await assert.rejects(p, { name: 'AbortError' });
  });

  it('an onProgress that throws rejects sample() with that error', async () => {
    const boom = new Error('progress boom');
    await assert.rejects(small({ timesteps: 50 }).sample({ batchSize: 1, onProgress: () => { throw boom; } }), (err) => err === boom);
  });
});

describe('reliability: guidanceKwargs', () => {
  const d16 = (): GaussianDiffusion => new GaussianDiffusion(toy, { imageSize: 16, channels: 3, timesteps: 10 });
  const linear = (): LinearClassifier => new LinearClassifier({ imageSize: 16, channels: 3, numClasses: 4 });

  for (const [name, condFn] of [['classifierCondFn', classifierCondFn], ['classifierGuidance', classifierGuidance]] as const) {
    describe(name, () => {
      it('no guidanceKwargs at all', async () => {
        await assert.rejects(d16().sample({ batchSize: 2, condFn }), {
          name: 'TypeError',
          message: 'guidanceKwargs: classifier guidance needs { classifier, y, classifierScale }',
        });
      });

      it('a missing or wrong classifier', async () => {
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { y: torch.tensor([0, 1]) } as never }), {
          name: 'TypeError',
          message: 'guidanceKwargs.classifier: expected a Module (a Classifier, or jit.load of a checkpoint)',
        });
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier: toy.native, y: torch.tensor([0, 1]) } as never }), {
          name: 'TypeError',
        });
      });

      it('y of the wrong length, type or dtype', async () => {
        const classifier = linear();
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier, y: torch.tensor([0, 1, 2]) } }), {
          name: 'RangeError',
          message: 'guidanceKwargs.y has 3 labels but batchSize is 2',
        });
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier, y: [0, 1] as never } }), {
          message: 'guidanceKwargs.y: expected an int64 Tensor of target classes',
        });
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier, y: torch.tensor([0.5, 1]) } }), {
          name: 'TypeError',
          message: 'guidanceKwargs.y: expected an int64, int32 or uint8 Tensor of class indices but received float32',
        });
        const gone = torch.tensor([0, 1]);
        gone.dispose();
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier, y: gone } }), { message: 'Tensor was disposed and cannot be used' });
      });

      it('y out of range', async () => {
        const classifier = linear();
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier, y: torch.tensor([0, 4]) } }), {
          name: 'RangeError',
          message: 'guidanceKwargs.y has class 4, outside 0..3',
        });
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier, y: torch.tensor([-1, 0]) } }), {
          name: 'RangeError',
          message: 'guidanceKwargs.y has class -1, outside 0..3',
        });
      });

      it('y out of range for a classifier without num_classes: the step fails cleanly', async () => {
        const classifier = jit.load(path.join(REF, 'classifier.pt'));
        assert.strictEqual(classifier.attribute('num_classes'), undefined);
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier, y: torch.tensor([0, 9]) } }), /out of bounds|out of range/);
      });

      it('a bad classifierScale', async () => {
        const classifier = linear();
        for (const classifierScale of [NaN, Infinity, '2']) {
          await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier, y: torch.tensor([0, 1]), classifierScale: classifierScale as number } }), {
            name: 'TypeError',
            message: `guidanceKwargs.classifierScale: expected a finite number but received ${String(classifierScale)}`,
          });
        }
      });

      it('a classifier that returns a tuple, the wrong shape, or raises', async () => {
        const y = torch.tensor([0, 1]);
        const tuple = jit.load(path.join(REL, 'forward_tuple.pt'));
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier: tuple, y } }),
          name === 'classifierGuidance' ? { message: 'the classifier returned Tuple; expected a tensor of logits' } : { name: 'TypeError' });
        const wrong = jit.load(path.join(REL, 'forward_wrong_shape.pt'));
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier: wrong, y } }),
          name === 'classifierGuidance' ? { message: 'the classifier returned logits of shape [2, 1, 16, 16]; expected [2, num_classes]' } : Error);
        const raises = jit.load(path.join(REL, 'forward_raises.pt'));
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier: raises, y } }), /reliability fixture: forward failed/);
        const small8 = new LinearClassifier({ imageSize: 8, channels: 3, numClasses: 4 });
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier: small8, y } }), /mat1 and mat2 shapes cannot be multiplied/);
      });

      it('a disposed classifier', async () => {
        const classifier = linear();
        classifier.dispose();
        await assert.rejects(d16().sample({ batchSize: 2, condFn, guidanceKwargs: { classifier, y: torch.tensor([0, 1]) } }), {
          message: 'Module was disposed and cannot be used',
        });
      });
    });
  }
});
