// Bad input to the Tensor API: a JS error naming what was wrong, never a crash.
import * as assert from 'assert';
import { torch } from '../lib';

describe('tensor errors', () => {
  it('shape mismatch keeps LibTorch message', () => {
    assert.throws(() => torch.ones([2, 3]).add(torch.ones([4])), /The size of tensor a \(3\) must match the size of tensor b \(4\)/);
    assert.throws(() => torch.ones([2, 3]).matmul(torch.ones([2, 3])), /cannot be multiplied/);
    assert.throws(() => torch.ones([6]).view(4), /shape '\[4\]' is invalid for input of size 6/);
  });

  it('dtype mismatch', () => {
    assert.throws(() => torch.ones([2]).matmul(torch.ones([2], { dtype: 'float64' })), /same dtype|expected .* dtype/i);
    assert.throws(() => torch.nn.functional.crossEntropy(torch.ones([2, 3]), torch.ones([2])), /expected scalar type Long|Float/);
  });

  it('device mismatch or unavailable device', () => {
    // One past the last GPU fails everywhere: cuda:0 without CUDA, cuda:N on a machine with N GPUs.
    assert.throws(() => torch.ones([2], { device: `cuda:${torch.cuda.deviceCount()}` }), /CUDA|cuda|device/);
    if (torch.cuda.isAvailable()) {
      assert.throws(() => torch.ones([2]).add(torch.ones([2, 2], { device: 'cuda' })), /same device/);
    } else {
      assert.throws(() => torch.ones([2], { device: 'cuda' }), /CUDA|cuda/);
    }
    assert.throws(() => torch.ones([2], { device: 'gpu' as never }), { name: 'TypeError', message: "Unknown device 'gpu'; expected 'cpu', 'cuda' or 'cuda:N'" });
  });

  it('out-of-range index', () => {
    assert.throws(() => torch.arange(5).indexSelect(0, torch.tensor([7])), /out of range|index/i);
    assert.throws(() => torch.arange(5).select(0, 9), /out of range/);
    assert.throws(() => torch.ones([2, 3]).index([torch.tensor([0]), torch.tensor([5])]), /out of bounds/);
  });

  it('bad dtype name', () => {
    assert.throws(() => torch.zeros([2], { dtype: 'float8' as never }), {
      name: 'TypeError',
      message: "Unknown dtype 'float8'; expected one of float32, float64, float16, bfloat16, int64, int32, uint8, bool",
    });
  });

  it('wrong argument types are TypeErrors; bad values RangeErrors', () => {
    assert.throws(() => torch.ones([2]).add('x' as never), { name: 'TypeError', message: "Expected Tensor, number, boolean or BigInt for other but received 'x'" });
    assert.throws(() => torch.zeros([2, -1]), { name: 'RangeError', message: 'Expected non-negative integer for shape[1] but received -1' });
    assert.throws(() => torch.zeros([2.5]), { name: 'RangeError', message: 'Expected integer for shape[0] but received 2.5' });
    assert.throws(() => torch.zeros('3' as never), { name: 'TypeError' });
    assert.throws(() => torch.tensor([[1, 2], [3]]), { name: 'RangeError', message: 'tensor(): ragged nested array; every row must have the same length' });
    assert.throws(() => torch.ones([2]).item(), { name: 'RangeError', message: 'item() needs a tensor with exactly one element; this one has 2' });
    assert.throws(() => torch.setNumThreads(0), { name: 'RangeError' });
  });

  it('a huge allocation is an error, not an abort', () => {
    assert.throws(() => torch.empty([2 ** 40, 2 ** 20]), /memory|overflow|allocate|too large/i);
  });

  it('NaN and Inf pass through math as in PyTorch', () => {
    const t = torch.tensor([NaN, Infinity, -1]);
    assert.deepStrictEqual(t.isfinite().toArray(), [false, false, true]);
    assert.ok(Number.isNaN((t.sqrt().toArray() as number[])[2]));
  });
});
