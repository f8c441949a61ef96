// sample()'s options checked before the native sample starts (a bad one must not leave a
// sample running), seeds beyond what a number holds exactly, uint8 labels, and abort reasons.
import * as assert from 'assert';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, LinearClassifier, torch } from '../lib';
import { FIXTURES, maxAbsDiff } from './helpers';

const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
const small = (timesteps = 10): GaussianDiffusion => new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps });
const settle = (ms = 50): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('sample() options', () => {
  it('a signal that is not an AbortSignal is a TypeError before anything runs', async () => {
    const before = torch.memory();
    for (const signal of [{}, { aborted: false }, 'abort', null]) {
      let steps = 0;
      await assert.rejects(small(200).sample({ batchSize: 1, signal: signal as never, onProgress: () => steps++ }), {
        name: 'TypeError',
        message: `Expected an AbortSignal for signal but received ${signal === null ? 'null' : typeof signal}`,
      });
      await settle();
      assert.strictEqual(steps, 0, `a sample ran with signal ${JSON.stringify(signal)}`);
    }
    assert.deepStrictEqual(torch.memory(), before);
  });

  it('aborting rejects with signal.reason, as fetch does', async () => {
    const reason = new Error('the client went away');
    const controller = new AbortController();
    const p = small(200).sample({ batchSize: 1, signal: controller.signal, onProgress: ({ step }) => step === 3 && controller.abort(reason) });
    await assert.rejects(p, (err) => err === reason);
    // Without a reason: the signal's own AbortError DOMException.
    const plain = new AbortController();
    const q = small(200).sample({ batchSize: 1, signal: plain.signal, onProgress: ({ step }) => step === 3 && plain.abort() });
    await assert.rejects(q, (err) => err === plain.signal.reason && (err as Error).name === 'AbortError');
    // Aborted before the call: the reason, at once.
    await assert.rejects(small().sample({ signal: AbortSignal.abort('stop') }), (err) => err === 'stop');
  });

  it('a seed must be a safe non-negative integer, and the error says so', async () => {
    for (const seed of [2 ** 64, -1, 1.5, Number.MAX_SAFE_INTEGER + 1]) {
      await assert.rejects(small().sample({ batchSize: 1, seed }), {
        name: 'RangeError',
        message: `Expected seed to be an integer in 0..9007199254740991 but received ${seed}`,
      });
    }
    await assert.rejects(small().sample({ batchSize: 1, seed: '1' as never }), { name: 'TypeError', message: 'Expected integer for seed but received string' });
    // The native integer check says the same of an integer a number cannot hold exactly.
    assert.throws(() => torch.manualSeed(2 ** 64), {
      name: 'RangeError',
      message: 'Expected a safe integer (magnitude at most 2^53 - 1) for seed but received 18446744073709552000',
    });
    const a = await small().sample({ batchSize: 1, seed: Number.MAX_SAFE_INTEGER });
    const b = await small().sample({ batchSize: 1, seed: Number.MAX_SAFE_INTEGER });
    assert.strictEqual(maxAbsDiff(a.toFloat32Array(), b.toFloat32Array()), 0);
    torch.dispose([a, b]);
  });

  it('uint8 labels guide as int64 labels do (native and JS classifier guidance)', async () => {
    const classifier = new LinearClassifier({ imageSize: 8, channels: 3, numClasses: 4 });
    const d = small();
    for (const condFn of [classifierGuidance, classifierCondFn]) {
      const run = (y: ReturnType<typeof torch.tensor>) => d.sample({ batchSize: 3, seed: 5, condFn, guidanceKwargs: { classifier, y, classifierScale: 3 } });
      const wide = await run(torch.tensor([0, 3, 1]));
      const narrow = await run(torch.tensor([0, 3, 1], { dtype: 'uint8' }));
      const other = await run(torch.tensor([2, 2, 2], { dtype: 'uint8' }));
      assert.strictEqual(maxAbsDiff(narrow.toFloat32Array(), wide.toFloat32Array()), 0);
      // The labels matter: other classes give other images.
      assert.ok(maxAbsDiff(other.toFloat32Array(), wide.toFloat32Array()) > 1e-4);
      torch.dispose([wide, narrow, other]);
    }
    await assert.rejects(
      d.sample({ batchSize: 1, condFn: classifierGuidance, guidanceKwargs: { classifier, y: torch.tensor([1.5]) } }),
      { name: 'TypeError', message: 'guidanceKwargs.y: expected an int64, int32 or uint8 Tensor of class indices but received float32' },
    );
  });
});
