// Autograd from TypeScript, checked against gradients worked out by hand.
import * as assert from 'assert';
import { torch } from '../lib';
import { assertClose, f32Tol } from './helpers';

describe('autograd', () => {
  it('grad of logSoftmax(W x)[y] wrt x is W^T (onehot(y) - softmax(W x))', () => {
    torch.manualSeed(3);
    const W = torch.randn([5, 4]);
    const x = torch.randn([4]).requiresGrad_();
    const y = 2;
    const out = W.matmul(x).logSoftmax(0).select(0, y);
    out.backward();
    const viaBackward = x.grad!;

    // Independent: the closed form, computed without autograd.
    const p = torch.noGrad(() => W.matmul(x).softmax(0));
    const onehot = torch.zeros([5]);
    onehot.copy_(torch.arange(5).eq(y).to('float32'));
    const expected = W.t().matmul(onehot.sub(p));
    assertClose(Array.from(viaBackward.toFloat32Array()), Array.from(expected.toFloat32Array()), 2e-7, 'backward'); // measured 1.5e-8

    const x2 = x.detach().requiresGrad_();
    const [g] = torch.autograd.grad(W.matmul(x2).logSoftmax(0).select(0, y), x2);
    assertClose(Array.from(g!.toFloat32Array()), Array.from(viaBackward.toFloat32Array()), 1e-7, 'autograd.grad vs backward');
  });

  it('batched: grad of sum_i log_softmax(X W^T)[i, y_i] matches backward', () => {
    torch.manualSeed(5);
    const W = torch.randn([3, 6]);
    const X = torch.randn([4, 6]).requiresGrad_();
    const y = torch.tensor([0, 2, 1, 2]);
    const s = X.matmul(W.t()).logSoftmax(-1).index([torch.arange(4), y]).sum();
    const [g] = torch.autograd.grad(s, X, { retainGraph: true });
    s.backward();
    assertClose(Array.from(g!.toFloat32Array()), Array.from(X.grad!.toFloat32Array()), 0, 'grad');
    const p = X.detach().matmul(W.t()).softmax(-1);
    const onehot = torch.arange(3).unsqueeze(0).eq(y.unsqueeze(1)).to('float32');
    const expected = onehot.sub(p).matmul(W);
    assertClose(Array.from(g!.toFloat32Array()), Array.from(expected.toFloat32Array()), f32Tol(expected.toFloat32Array()), 'closed form'); // measured 0
  });

  it('noGrad, enableGrad and isGradEnabled', () => {
    const x = torch.ones([2], { requiresGrad: true });
    assert.strictEqual(torch.isGradEnabled(), true);
    const y = torch.noGrad(() => {
      assert.strictEqual(torch.isGradEnabled(), false);
      const inner = torch.enableGrad(() => x.mul(2));
      assert.strictEqual(inner.requiresGrad, true);
      return x.mul(2);
    });
    assert.strictEqual(y.requiresGrad, false);
    assert.strictEqual(torch.isGradEnabled(), true);
    assert.strictEqual(x.detach().requiresGrad, false);
  });

  it('noGrad and enableGrad refuse async functions before calling them; grad mode is untouched', async () => {
    let started = false;
    assert.throws(() => torch.noGrad(async () => { started = true; }), {
      name: 'TypeError', message: 'noGrad() does not support async functions: grad mode would be restored at the first await',
    });
    assert.throws(() => torch.enableGrad(async function* () { started = true; } as unknown as () => void), {
      name: 'TypeError', message: 'enableGrad() does not support async functions: grad mode would be restored at the first await',
    });
    assert.strictEqual(started, false);
    // A plain function that returns a Promise has run by then: refused after, grad mode restored.
    let gradInside: boolean | null = null;
    assert.throws(() => torch.noGrad(() => { gradInside = torch.isGradEnabled(); return Promise.resolve(1); }), {
      name: 'TypeError', message: 'noGrad() does not support functions that return a Promise: grad mode would be restored at the first await',
    });
    assert.strictEqual(gradInside, false);
    assert.strictEqual(torch.isGradEnabled(), true);
    await Promise.resolve();
    assert.strictEqual(torch.isGradEnabled(), true);
    assert.throws(() => torch.noGrad(null as unknown as () => void), { name: 'TypeError', message: 'noGrad() expects a function but received null' });
  });

  it('createGraph gives second derivatives', () => {
    const x = torch.tensor([3.0], { dtype: 'float32', requiresGrad: true });
    const [dy] = torch.autograd.grad(x.pow(3).sum(), x, { createGraph: true });
    assert.strictEqual(dy!.item(), 27);
    const [d2y] = torch.autograd.grad(dy!.sum(), x);
    assert.strictEqual(d2y!.item(), 18);
  });

  it('errors: backward of a tensor without grad, grad of a non-scalar', () => {
    assert.throws(() => torch.ones([2]).sum().backward(), /does not require grad/);
    assert.throws(() => torch.ones([2], { requiresGrad: true }).mul(2).backward(), /scalar outputs/);
    assert.throws(() => torch.autograd.grad(torch.ones([1]), torch.ones([1])), /does not require grad/);
  });

  it('degenerate autograd.grad calls are clear errors, not LibTorch internal asserts', () => {
    torch.tidy(() => {
      const x = torch.ones([2], { requiresGrad: true });
      const y = x.mul(2);
      const noInternal = (err: Error): void => assert.doesNotMatch(err.message, /INTERNAL ASSERT|report a bug/);
      assert.throws(() => torch.autograd.grad(y.sum(), []), {
        name: 'RangeError',
        message: 'autograd.grad: inputs is empty; pass the tensor(s) to differentiate with respect to',
      });
      assert.throws(() => torch.autograd.grad([], [x]), { name: 'RangeError', message: 'autograd.grad: outputs is empty; pass the tensor(s) to differentiate' });
      assert.throws(() => torch.autograd.grad(y.sum(), x, { gradOutputs: [torch.ones([]), torch.ones([])], retainGraph: true }), {
        name: 'RangeError',
        message: 'autograd.grad: gradOutputs has 2 tensors but outputs has 1',
      });
      // A non-scalar output without gradOutputs, an input that does not require grad, an
      // input the output does not use: LibTorch's own messages, as Python gives them.
      for (const [call, message] of [
        [() => torch.autograd.grad(y, x, { retainGraph: true }), /grad can be implicitly created only for scalar outputs/],
        [() => torch.autograd.grad(y.sum(), torch.ones([2]), { retainGraph: true }), /element 0 of the input tensors does not require grad/],
        [() => torch.autograd.grad(y.sum(), torch.ones([2], { requiresGrad: true }), { retainGraph: true }), /appears to not have been used in the graph/],
      ] as [() => unknown, RegExp][]) {
        assert.throws(call, (err: Error) => {
          assert.strictEqual(err.name, 'Error');
          assert.match(err.message, message);
          noInternal(err);
          return true;
        });
      }
      // The graph survived the refusals.
      assert.deepStrictEqual(torch.autograd.grad(y.sum(), x)[0]!.toArray(), [2, 2]);
    });
  });
});
