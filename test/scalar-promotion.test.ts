// A JS number, boolean or BigInt next to a tensor acts as a Python scalar does in PyTorch (a
// "wrapped number"): the table in test/fixtures/ops/scalar_promotion.json is what Python torch
// returns (scripts/fixtures/scalar_promotion.py), op by op, dtype by dtype, scalar by scalar.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { DType, Scalar, Tensor, torch } from '../lib';
import { FIXTURES } from './helpers';

interface Row {
  op: string;
  dtype: DType | null;
  scalar: number | boolean;
  error?: true;
  resultDtype?: DType;
  values?: (number | boolean | string)[];
}
// JSON has no inf or NaN: the fixture writes them as their JS names.
const jsonValues = (t: Tensor): string =>
  JSON.stringify((t.toArray() as (number | boolean)[]).map((v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
const table: { data: number[]; mask: boolean[]; rows: Row[]; bigInt64: Record<string, (number | boolean)[]> } = JSON.parse(
  fs.readFileSync(path.join(FIXTURES, 'ops', 'scalar_promotion.json'), 'utf8'),
);

const ops: Record<string, (t: Tensor, s: Scalar, mask: Tensor) => Tensor> = {
  add: (t, s) => t.add(s),
  sub: (t, s) => t.sub(s),
  mul: (t, s) => t.mul(s),
  div: (t, s) => t.div(s),
  pow: (t, s) => t.pow(s),
  remainder: (t, s) => t.remainder(s),
  eq: (t, s) => t.eq(s),
  lt: (t, s) => t.lt(s),
  ge: (t, s) => t.ge(s),
  maximum: (t, s) => t.maximum(s),
  where: (t, s, mask) => t.where(mask, s),
  whereFn: (t, s, mask) => torch.where(mask, s, t),
  clamp: (t, s) => t.clamp(s),
  add_: (t, s) => t.clone().add_(s),
  mul_: (t, s) => t.clone().mul_(s),
  div_: (t, s) => t.clone().div_(s),
  fill_: (t, s) => t.clone().fill_(s),
  maskedFill: (t, s, mask) => t.maskedFill(mask, s),
  fullLike: (t, s) => torch.fullLike(t, s),
  full: (_t, s) => torch.full([2], s),
};

describe('scalar operands follow PyTorch type promotion', () => {
  it(`the ${table.rows.length} rows of Python's table: result dtype and values, or a refusal`, () => {
    const mask = torch.tensor(table.mask);
    const failures: string[] = [];
    for (const row of table.rows) {
      const what = `${row.dtype ?? 'none'}.${row.op}(${row.scalar})`;
      torch.tidy(() => {
        const t = torch.tensor(table.data, { dtype: row.dtype ?? 'float32' });
        const run = (): Tensor => ops[row.op](t, row.scalar, mask);
        if (row.error) {
          try {
            run();
            failures.push(`${what}: PyTorch refuses, ours did not`);
          } catch {
            // refused, as in PyTorch
          }
          return;
        }
        let r: Tensor;
        try {
          r = run();
        } catch (err) {
          failures.push(`${what}: threw ${(err as Error).message}`);
          return;
        }
        if (r.dtype !== row.resultDtype) failures.push(`${what}: dtype ${r.dtype}, PyTorch ${row.resultDtype}`);
        else if (jsonValues(r) !== JSON.stringify(row.values)) {
          failures.push(`${what}: ${jsonValues(r)}, PyTorch ${JSON.stringify(row.values)}`);
        }
      });
    }
    mask.dispose();
    assert.deepStrictEqual(failures, []);
  });

  it('int64 stays int64 with integer scalars, in place too, and exact beyond float32', () => {
    torch.tidy(() => {
      const x = torch.tensor([5, 7]);
      assert.strictEqual(x.add(1).dtype, 'int64');
      assert.deepStrictEqual(x.add_(1).toArray(), [6, 8]);
      assert.strictEqual(x.dtype, 'int64');
      const big = torch.tensor([2 ** 40 + 1]);
      const exact = table.bigInt64;
      assert.deepStrictEqual(big.add(1).toArray(), exact.add);
      assert.deepStrictEqual(big.sub(2 ** 40).toArray(), exact.sub);
      assert.deepStrictEqual(big.mul(3).toArray(), exact.mul);
      assert.deepStrictEqual(big.eq(2 ** 40).toArray(), exact.eq_neighbour);
      assert.deepStrictEqual(torch.zeros([1], { dtype: 'int64' }).fill_(2 ** 40 + 3).toArray(), exact.fill_);
      // A fractional scalar promotes to the default float dtype; true division is float.
      assert.strictEqual(x.add(0.5).dtype, 'float32');
      assert.deepStrictEqual(x.div(2).toArray(), [3, 4]);
      assert.strictEqual(x.div(2).dtype, 'float32');
      assert.throws(() => x.add_(0.5), /Float can't be cast to the desired output type Long/);
    });
  });

  it('a BigInt is an int64 scalar; one beyond int64 is a RangeError naming it', () => {
    torch.tidy(() => {
      const big = torch.tensor([2 ** 40]);
      const sum = big.add(2n ** 60n);
      assert.strictEqual(sum.dtype, 'int64');
      assert.deepStrictEqual(sum.data(), BigInt64Array.of(2n ** 60n + 2n ** 40n));
      assert.strictEqual(torch.ones([2]).mul(3n).dtype, 'float32');
      assert.deepStrictEqual(torch.full([1], 5n).toArray(), [5]);
      assert.strictEqual(torch.full([1], 5n).dtype, 'int64');
      assert.throws(() => big.add(2n ** 64n), {
        name: 'RangeError',
        message: 'Expected a BigInt in the int64 range for other but received 18446744073709551616n',
      });
      assert.throws(() => big.add(Symbol('s') as never), {
        name: 'TypeError',
        message: 'Expected Tensor, number, boolean or BigInt for other but received a symbol',
      });
    });
  });

  it('-0, NaN, Infinity and integral numbers beyond int64 stay floats', () => {
    torch.tidy(() => {
      const x = torch.tensor([1, 2]);
      assert.strictEqual(x.add(NaN).dtype, 'float32');
      assert.strictEqual(x.add(Infinity).dtype, 'float32');
      assert.strictEqual(x.add(2 ** 63).dtype, 'float32');
      assert.strictEqual(x.mul(-0).dtype, 'float32');
      assert.ok(Object.is(torch.tensor([1.5]).mul(-0).item(), -0));
    });
  });
});
