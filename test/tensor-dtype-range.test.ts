// Values and dtypes that do not go together: torch.tensor infers int64 only for safe integers
// and refuses a value an integer dtype cannot hold; an allocation that cannot be made is a
// RangeError naming its bytes.
import * as assert from 'assert';
import { torch } from '../lib';

const fits = (message: string): { name: string; message: string } => ({ name: 'RangeError', message });

describe('tensor values that do not fit the dtype', () => {
  it('infers int64 only for safe integers; larger integral numbers are float32, as in Python', () => {
    torch.tidy(() => {
      assert.strictEqual(torch.tensor([1, 2]).dtype, 'int64');
      assert.strictEqual(torch.tensor([Number.MAX_SAFE_INTEGER]).dtype, 'int64');
      assert.deepStrictEqual(torch.tensor([Number.MAX_SAFE_INTEGER]).data(), BigInt64Array.of(BigInt(Number.MAX_SAFE_INTEGER)));
      const e20 = torch.tensor([1e20]);
      assert.strictEqual(e20.dtype, 'float32');
      assert.strictEqual(e20.item(), Math.fround(1e20));
      // Python: torch.tensor([1e40]) is tensor([inf]).
      const e40 = torch.tensor([1, 1e40]);
      assert.strictEqual(e40.dtype, 'float32');
      assert.deepStrictEqual(e40.toArray(), [1, Infinity]);
      assert.strictEqual(torch.tensor([2 ** 53]).dtype, 'float32');
    });
  });

  it('refuses NaN, Infinity and out-of-range values for integer dtypes, naming value and dtype', () => {
    assert.throws(() => torch.tensor([NaN], { dtype: 'int64' }), fits('tensor(): the value NaN (element 0) does not fit dtype int64'));
    assert.throws(() => torch.tensor([1, Infinity], { dtype: 'int32' }), fits('tensor(): the value Infinity (element 1) does not fit dtype int32'));
    assert.throws(() => torch.tensor([1e20], { dtype: 'int64' }), fits('tensor(): the value 100000000000000000000 (element 0) does not fit dtype int64'));
    assert.throws(() => torch.tensor([2 ** 63], { dtype: 'int64' }), fits('tensor(): the value 9223372036854776000 (element 0) does not fit dtype int64'));
    assert.throws(() => torch.tensor([[0, 255], [300, 1]], { dtype: 'uint8' }), fits('tensor(): the value 300 (element 2) does not fit dtype uint8'));
    assert.throws(() => torch.tensor([-1], { dtype: 'uint8' }), fits('tensor(): the value -1 (element 0) does not fit dtype uint8'));
    assert.throws(() => torch.tensor([2 ** 31], { dtype: 'int32' }), fits('tensor(): the value 2147483648 (element 0) does not fit dtype int32'));
  });

  it('keeps the values that do fit: the edges of each range, truncated fractions, bools', () => {
    torch.tidy(() => {
      assert.deepStrictEqual(torch.tensor([-(2 ** 63)], { dtype: 'int64' }).data(), BigInt64Array.of(-(2n ** 63n)));
      assert.deepStrictEqual(torch.tensor([-(2 ** 31), 2 ** 31 - 1], { dtype: 'int32' }).toArray(), [-(2 ** 31), 2 ** 31 - 1]);
      assert.deepStrictEqual(torch.tensor([0, 255], { dtype: 'uint8' }).toArray(), [0, 255]);
      assert.deepStrictEqual(torch.tensor([2.7, -2.7], { dtype: 'int64' }).toArray(), [2, -2]);
      assert.deepStrictEqual(torch.tensor([2, 0], { dtype: 'bool' }).toArray(), [true, false]);
      // Float dtypes overflow to Infinity and keep NaN, as in Python.
      assert.deepStrictEqual(torch.tensor([7e4, NaN], { dtype: 'float16' }).isnan().toArray(), [false, true]);
      assert.strictEqual(torch.tensor([7e4], { dtype: 'float16' }).item(), Infinity);
    });
  });

  it('checks typed arrays converted to an integer dtype too', () => {
    assert.throws(() => torch.tensor(Float32Array.of(1, 300), { dtype: 'uint8' }), fits('tensor(): the value 300 (element 1) does not fit dtype uint8'));
    assert.throws(() => torch.tensor(Int32Array.of(-5), { dtype: 'uint8' }), fits('tensor(): the value -5 (element 0) does not fit dtype uint8'));
    assert.throws(() => torch.tensor(Float64Array.of(NaN), { dtype: 'int32' }), fits('tensor(): the value NaN (element 0) does not fit dtype int32'));
    // The range is checked before truncation, as Python does: 255.5 does not fit uint8.
    assert.throws(() => torch.tensor(Float32Array.of(255.5), { dtype: 'uint8' }), fits('tensor(): the value 255.5 (element 0) does not fit dtype uint8'));
    // int64 data keeps its digits in the message, beyond 2^53 too.
    assert.throws(
      () => torch.tensor(BigInt64Array.of(1n, 2n ** 62n + 1n), { dtype: 'int32' }),
      fits('tensor(): the value 4611686018427387905 (element 1) does not fit dtype int32'),
    );
    torch.tidy(() => {
      assert.deepStrictEqual(torch.tensor(BigInt64Array.of(-7n, 2n ** 31n - 1n), { dtype: 'int32' }).toArray(), [-7, 2 ** 31 - 1]);
      assert.deepStrictEqual(torch.tensor(Float32Array.of(254.5), { dtype: 'uint8' }).toArray(), [254]);
    });
  });
});

describe('BigInt data', () => {
  it('nested BigInts are exact int64 data; out of int64, mixed with numbers, or not fitting the dtype are refused', () => {
    torch.tidy(() => {
      const t = torch.tensor([[1n, 2n ** 62n + 1n], [-(2n ** 63n), 0n]]);
      assert.strictEqual(t.dtype, 'int64');
      assert.deepStrictEqual(t.shape, [2, 2]);
      assert.deepStrictEqual(t.data(), BigInt64Array.of(1n, 2n ** 62n + 1n, -(2n ** 63n), 0n));
      assert.deepStrictEqual(torch.tensor([3n], { dtype: 'float32' }).toArray(), [3]);
    });
    assert.throws(() => torch.tensor([2n ** 63n]), fits('tensor(): the value 9223372036854775808n (element 0) does not fit dtype int64'));
    assert.throws(() => torch.tensor([1n, 2n ** 40n], { dtype: 'int32' }), fits('tensor(): the value 1099511627776 (element 1) does not fit dtype int32'));
    assert.throws(() => torch.tensor([1n, 2]), {
      name: 'TypeError',
      message: 'tensor(): BigInts cannot be mixed with numbers or booleans; use BigInts for all or none',
    });
  });
});

describe('allocation failures', () => {
  it('are RangeErrors naming the bytes asked for', () => {
    const before = torch.memory();
    // 1e14 float32 elements: 400 TB, beyond any machine's memory and the address space.
    for (const make of [() => torch.zeros([1e7, 1e7]), () => torch.empty([1e7, 1e7]), () => torch.ones([1e7, 1e7], { dtype: 'float64' })]) {
      assert.throws(make, (err: Error) => {
        assert.strictEqual(err.name, 'RangeError');
        assert.match(err.message, /you tried to allocate [48]00000000000000 bytes/);
        return true;
      });
    }
    assert.deepStrictEqual(torch.memory(), before);
  });
});
