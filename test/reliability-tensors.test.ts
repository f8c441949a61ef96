// Bad tensor input: wrong argument types in every position of every public function and
// Tensor method, wrong shapes and dtypes, NaN/Inf, negative, fractional and huge sizes.
// Each is a thrown Error (TypeError/RangeError for argument types and values), never a crash.
import * as assert from 'assert';
import * as path from 'path';
import { GaussianDiffusion, jit, torch, Tensor } from '../lib';
import { FIXTURES } from './helpers';

type Call = (...args: unknown[]) => unknown;

function disposedTensor(): Tensor {
  const t = torch.ones([2, 3]);
  t.dispose();
  return t;
}

// Values that are wrong somewhere: each replaces one argument at a time.
function badValues(): [string, () => unknown][] {
  return [
    ['undefined', () => undefined],
    ['null', () => null],
    ['a string', () => 'x'],
    ['an object', () => ({ a: 1 })],
    ['a mixed array', () => [1, 'a']],
    ['an array of arrays', () => [[1], [2]]],
    ['NaN', () => NaN],
    ['Infinity', () => -Infinity],
    ['-1', () => -1],
    ['-7', () => -7],
    ['1.5', () => 1.5],
    ['2**53', () => 2 ** 53],
    ['1e300', () => 1e300],
    ['a bigint', () => 10n],
    ['a symbol', () => Symbol('s')],
    ['a function', () => (): number => 1],
    ['a disposed tensor', disposedTensor],
    ['an int64 tensor', () => torch.tensor([[1, 2, 3], [4, 5, 6]])],
    ['a bool tensor', () => torch.tensor([true, false])],
    ['a float16 tensor', () => torch.ones([2, 3], { dtype: 'float16' })],
    ['a 0-d tensor', () => torch.tensor(3)],
    ['an empty tensor', () => torch.zeros([0])],
    ['a 4-d tensor', () => torch.zeros([1, 2, 3, 4])],
  ];
}

// Each entry: a function and valid arguments for it (fresh per call).
const x23 = (): Tensor => torch.randn([2, 3]);
const img = (): Tensor => torch.randn([1, 2, 4, 4]);
const TORCH: Record<string, [Call, () => unknown[]]> = {
  tensor: [torch.tensor as Call, () => [[1, 2, 3], { dtype: 'float32' }]],
  tensorTyped: [torch.tensor as Call, () => [new Float32Array(6), { shape: [2, 3] }]],
  zeros: [torch.zeros as Call, () => [[2, 3], { dtype: 'float32' }]],
  ones: [torch.ones as Call, () => [[2, 3], { requiresGrad: false }]],
  empty: [torch.empty as Call, () => [[2, 3], {}]],
  full: [torch.full as Call, () => [[2, 3], 1.5, { dtype: 'float64' }]],
  randn: [torch.randn as Call, () => [[2, 3], {}]],
  rand: [torch.rand as Call, () => [[2, 3], {}]],
  randint: [torch.randint as Call, () => [0, 10, [2, 3], {}]],
  arange: [torch.arange as Call, () => [0, 6, 1, {}]],
  linspace: [torch.linspace as Call, () => [0, 1, 5, {}]],
  zerosLike: [torch.zerosLike as Call, () => [x23(), {}]],
  onesLike: [torch.onesLike as Call, () => [x23(), {}]],
  emptyLike: [torch.emptyLike as Call, () => [x23(), {}]],
  fullLike: [torch.fullLike as Call, () => [x23(), 2, {}]],
  randnLike: [torch.randnLike as Call, () => [x23(), {}]],
  randLike: [torch.randLike as Call, () => [x23(), {}]],
  manualSeed: [torch.manualSeed as Call, () => [0]],
  cat: [torch.cat as Call, () => [[x23(), x23()], 0]],
  stack: [torch.stack as Call, () => [[x23(), x23()], 1]],
  where: [torch.where as Call, () => [x23().gt(0), x23(), 0]],
  setNumThreads: [torch.setNumThreads as Call, () => [torch.getNumThreads()]],
  tidy: [torch.tidy as Call, () => [() => torch.ones([1])]],
  noGrad: [torch.noGrad as Call, () => [() => 1]],
  enableGrad: [torch.enableGrad as Call, () => [() => 1]],
  grad: [torch.autograd.grad as Call, () => {
    const a = torch.ones([2], { requiresGrad: true });
    return [a.mul(2).sum(), a, {}];
  }],
  crossEntropy: [torch.nn.functional.crossEntropy as Call, () => [x23(), torch.tensor([0, 2]), { reduction: 'mean' }]],
  mseLoss: [torch.nn.functional.mseLoss as Call, () => [x23(), x23(), { reduction: 'sum' }]],
  gelu: [torch.nn.functional.gelu as Call, () => [x23(), { approximate: 'tanh' }]],
  conv2d: [torch.nn.functional.conv2d as Call, () => [img(), torch.randn([3, 2, 3, 3]), torch.zeros([3]), { stride: 1, padding: 1, dilation: 1, groups: 1 }]],
  linear: [torch.nn.functional.linear as Call, () => [x23(), torch.randn([4, 3]), torch.zeros([4])]],
  interpolate: [torch.nn.functional.interpolate as Call, () => [img(), { scaleFactor: 2, mode: 'bilinear', alignCorners: false }]],
  interpolateSize: [torch.nn.functional.interpolate as Call, () => [img(), { size: [3, 5], mode: 'nearest' }]],
  logSoftmax: [torch.nn.functional.logSoftmax as Call, () => [x23(), 1]],
  softmax: [torch.nn.functional.softmax as Call, () => [x23(), -1]],
};

// Tensor methods and valid arguments for a [2, 3] float32 tensor.
const METHODS: Record<string, () => unknown[]> = {
  ...Object.fromEntries(
    ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'silu', 'square', 'floor', 'round',
      'sign', 'isfinite', 'isnan', 'logicalNot', 'contiguous', 't', 'cpu', 'clone', 'detach', 'data', 'toFloat32Array',
      'toTypedArray', 'toArray', 'toString', 'zero_'].map((m) => [m, () => []]),
  ),
  ...Object.fromEntries(
    ['add', 'sub', 'mul', 'div', 'pow', 'remainder', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'maximum', 'minimum', 'add_', 'sub_', 'mul_', 'div_'].map(
      (m) => [m, () => [x23()]],
    ),
  ),
  matmul: () => [torch.randn([3, 2])],
  where: () => [x23().gt(0), 0],
  clamp: () => [-1, 1],
  clamp_: () => [-1, 1],
  ...Object.fromEntries(['sum', 'mean', 'amax', 'amin', 'all', 'any', 'logsumexp', 'max', 'min', 'argmax', 'argmin'].map((m) => [m, () => [1, true]])),
  std: () => [1, false, 1],
  var: () => [[0, 1], true, 0],
  softmax: () => [1],
  logSoftmax: () => [0],
  view: () => [[3, 2]],
  viewVar: () => [3, 2],
  reshape: () => [[6]],
  permute: () => [[1, 0]],
  expand: () => [[2, 2, 3]],
  repeat: () => [[2, 1]],
  transpose: () => [0, 1],
  flatten: () => [0, -1],
  squeeze: () => [0],
  unsqueeze: () => [2],
  chunk: () => [2, 1],
  split: () => [[1, 2], 1],
  narrow: () => [1, 0, 2],
  slice: () => [1, 0, 3, 2],
  select: () => [1, 2],
  indexSelect: () => [1, torch.tensor([0, 2])],
  gather: () => [1, torch.tensor([[0], [2]])],
  index: () => [[torch.tensor([1]), null]],
  maskedFill: () => [torch.tensor([true, false, true]), 0],
  to: () => ['float64'],
  fill_: () => [2],
  copy_: () => [x23()],
  requiresGrad_: () => [true],
  item: () => [],
  backward: () => [torch.ones([2, 3]), { retainGraph: false }],
};

// A call either returns (its tensors are disposed) or throws an Error; anything else fails.
function attempt(label: string, fn: () => unknown, stats: { ok: number; errors: number }): void {
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    assert.ok(err instanceof Error, `${label} threw a non-Error: ${String(err)}`);
    assert.ok(err.message.length > 0, `${label} threw an Error without a message`);
    assert.ok(!/^unknown native error$/.test(err.message), `${label}: ${err.message}`);
    stats.errors++;
    return;
  }
  stats.ok++;
  torch.dispose(result);
}

describe('reliability: tensors', () => {
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
  });
  after(() => torch.setNumThreads(threads));

  it('every torch function, every argument replaced by a wrong value: an Error, never a crash', () => {
    const before = torch.memory().tensors;
    const stats = { ok: 0, errors: 0 };
    for (const [name, [fn, valid]] of Object.entries(TORCH)) {
      const n = torch.tidy(() => valid().length);
      for (let i = 0; i < n; i++) {
        for (const [what, make] of badValues()) {
          torch.tidy(() => {
            const args = valid();
            args[i] = make();
            attempt(`torch.${name} with ${what} as argument ${i}`, () => fn(...args), stats);
          });
        }
      }
      torch.tidy(() => attempt(`torch.${name}()`, () => fn(), stats));
    }
    torch.setNumThreads(threads);
    assert.strictEqual(torch.memory().tensors, before);
    assert.ok(stats.errors > 400, `only ${stats.errors} errors in ${stats.ok + stats.errors} calls`);
  });

  it('every Tensor method, every argument replaced by a wrong value: an Error, never a crash', () => {
    const before = torch.memory().tensors;
    const stats = { ok: 0, errors: 0 };
    for (const [key, valid] of Object.entries(METHODS)) {
      const name = key === 'viewVar' ? 'view' : key;
      const n = torch.tidy(() => valid().length);
      for (let i = 0; i < n; i++) {
        for (const [what, make] of badValues()) {
          torch.tidy(() => {
            const self = torch.randn([2, 3], { requiresGrad: name === 'backward' }).mul(1);
            const args = valid();
            args[i] = make();
            const method = (self as unknown as Record<string, Call>)[name];
            attempt(`Tensor.${name} with ${what} as argument ${i}`, () => method.apply(self, args), stats);
          });
        }
      }
    }
    assert.strictEqual(torch.memory().tensors, before);
    assert.ok(stats.errors > 800, `only ${stats.errors} errors in ${stats.ok + stats.errors} calls`);
  });

  it('every Tensor method and property on a wrong `this`: an Error, never a crash', () => {
    const before = torch.memory().tensors;
    const stats = { ok: 0, errors: 0 };
    const proto = Tensor.prototype as unknown as Record<string, Call>;
    const selves: [string, () => unknown][] = [
      ['a plain object', () => ({})],
      ['undefined', () => undefined],
      ['a number', () => 3],
      ['a disposed tensor', disposedTensor],
      ['an int64 tensor', () => torch.tensor([[1, 2, 3], [4, 5, 6]])],
      ['a bool tensor', () => torch.tensor([[true, false, true], [false, true, false]])],
      ['a float16 tensor', () => torch.ones([2, 3], { dtype: 'float16' })],
      ['a 0-d tensor', () => torch.tensor(2)],
      ['an empty tensor', () => torch.zeros([0, 3])],
      ['a leaf that requires grad', () => torch.ones([2, 3], { requiresGrad: true })],
      ['a Module', () => jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt')).native],
    ];
    for (const [key, valid] of Object.entries(METHODS)) {
      const name = key === 'viewVar' ? 'view' : key;
      for (const [what, make] of selves) {
        torch.tidy(() => attempt(`Tensor.${name} on ${what}`, () => proto[name].apply(make(), valid()), stats));
      }
    }
    for (const prop of ['shape', 'dtype', 'device', 'numel', 'ndim', 'requiresGrad', 'grad', 'isLeaf', 'isDisposed']) {
      const get = Object.getOwnPropertyDescriptor(Tensor.prototype, prop)!.get!;
      for (const [what, make] of selves) torch.tidy(() => attempt(`Tensor.${prop} of ${what}`, () => get.call(make()), stats));
    }
    const set = Object.getOwnPropertyDescriptor(Tensor.prototype, 'requiresGrad')!.set!;
    for (const [what, make] of selves) torch.tidy(() => attempt(`set requiresGrad on ${what}`, () => set.call(make(), 'yes'), stats));
    assert.strictEqual(torch.memory().tensors, before);
    assert.ok(stats.errors > 300, `only ${stats.errors} errors`);
  });

  it('a Tensor cannot be constructed from JS', () => {
    assert.throws(() => new (Tensor as unknown as new () => Tensor)(), {
      name: 'TypeError',
      message: 'Tensor cannot be constructed directly; use torch.tensor(), torch.zeros() and the like',
    });
  });

  it('wrong shapes and dtypes keep LibTorch’s message', () => {
    assert.throws(() => torch.ones([2, 3]).add(torch.ones([3, 2])), { message: 'The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 1' });
    assert.throws(() => torch.cat([torch.ones([2, 3]), torch.ones([2, 4])]), /Sizes of tensors must match except in dimension 0/);
    assert.throws(() => torch.tensor([true]).neg(), /Negation, the `-` operator, on a bool tensor is not supported/);
    assert.throws(() => torch.ones([2, 3]).maskedFill(torch.ones([3]), 0), /masked_fill_ only supports boolean masks/);
    assert.throws(() => torch.ones([2, 3]).gather(1, torch.tensor([[5], [0]])), /index 5 is out of bounds for dimension 1 with size 3/);
    assert.throws(() => torch.nn.functional.crossEntropy(torch.ones([2, 3]), torch.tensor([0, 3])), /Target 3 is out of bounds/);
    assert.throws(() => torch.ones([2, 3], { requiresGrad: true }).add_(1), /a leaf Variable that requires grad is being used in an in-place operation/);
    assert.throws(() => torch.ones([2, 3]).backward(), { message: 'backward(): the tensor does not require grad and has no grad_fn' });
    assert.throws(() => torch.cat([]), /expected a non-empty list of Tensors/);
  });

  it('negative and non-integer sizes are RangeErrors that name the argument', () => {
    assert.throws(() => torch.zeros([-3]), { name: 'RangeError', message: 'Expected non-negative integer for shape[0] but received -3' });
    assert.throws(() => torch.ones([2, 0.5]), { name: 'RangeError', message: 'Expected integer for shape[1] but received 0.5' });
    assert.throws(() => torch.randn([NaN]), { name: 'RangeError', message: 'Expected integer for shape[0] but received nan' });
    assert.throws(() => torch.full([Infinity], 1), { name: 'RangeError', message: 'Expected integer for shape[0] but received inf' });
    assert.throws(() => torch.linspace(0, 1, -2), { name: 'RangeError', message: 'Expected non-negative integer for steps but received -2' });
    assert.throws(() => torch.randint(0, 10, [2], {}).narrow(0, 0, -1), { name: 'RangeError', message: 'Expected non-negative integer for length but received -1' });
    assert.throws(() => torch.ones([4]).chunk(0), { name: 'RangeError', message: 'Expected positive integer for chunks but received 0' });
    assert.throws(() => torch.ones([4]).slice(0, 0, 4, 0), { name: 'RangeError', message: 'Expected positive integer for step but received 0' });
    assert.throws(() => torch.tensor(new Float32Array(4), { shape: [3] }), { name: 'RangeError', message: 'shape has 3 elements but the data has 4' });
    assert.throws(() => torch.setNumThreads(1e6), { name: 'RangeError', message: 'Expected integer between 1 and 1024 for threads but received 1e+06' });
    assert.throws(() => torch.arange(0, NaN), { name: 'RangeError', message: 'arange: start, end and step must be finite; got start 0, end nan, step 1' });
    assert.throws(() => torch.arange(0, 1, -Infinity), { name: 'RangeError', message: 'arange: start, end and step must be finite; got start 0, end 1, step -inf' });
    assert.throws(() => torch.arange(0, 1e300), { message: 'invalid size, possible overflow?' });
    assert.throws(() => torch.nn.functional.interpolate(torch.ones([1, 1, 2, 2]), { scaleFactor: NaN }), {
      name: 'RangeError',
      message: 'Expected a positive finite number for scaleFactor but received nan',
    });
  });

  it('huge sizes: allocation failure is an error, not an abort', () => {
    assert.throws(() => torch.zeros([2 ** 20, 2 ** 20, 2 ** 10]), /can't allocate memory: you tried to allocate 4503599627370496 bytes/);
    assert.throws(() => torch.ones([2 ** 50, 2 ** 50]), Error);
    assert.throws(() => torch.randn([2 ** 40]).add(1), Error);
    assert.throws(() => torch.ones([2]).expand([2 ** 20, 2 ** 20, 2]).contiguous(), /can't allocate memory/);
    assert.throws(() => torch.ones([2]).expand([2 ** 30, 2 ** 30, 2]).contiguous(), { message: 'Storage size calculation overflowed with sizes=[1073741824, 1073741824, 2]' });
    assert.throws(() => torch.ones([1, 1]).repeat([2 ** 26, 2 ** 26]), /can't allocate memory/);
    assert.throws(() => torch.tensor(new Float32Array(0), { shape: [2 ** 52, 2 ** 52, 0, 2 ** 40, 2 ** 40] }), Error);
    assert.throws(() => torch.linspace(0, 1, 2 ** 52), /can't allocate memory/);
    assert.throws(() => torch.nn.functional.interpolate(torch.ones([1, 1, 2, 2]), { scaleFactor: 2 ** 40 }), Error);
    // Still working afterwards.
    assert.deepStrictEqual(torch.ones([2]).add(1).toArray(), [2, 2]);
  });

  it('NaN and Inf inputs flow through math, models and the diffusion pieces without a crash', () => {
    const bad = torch.tensor([NaN, Infinity, -Infinity, 1]);
    assert.deepStrictEqual(bad.isnan().toArray(), [true, false, false, false]);
    assert.deepStrictEqual((bad.clamp(-1, 1).toArray() as number[]).slice(1), [1, -1, 1]);
    assert.ok(Number.isNaN(bad.sum().item() as number));
    assert.strictEqual(bad.amax().item(), NaN);
    assert.deepStrictEqual(torch.full([2], NaN).isnan().toArray(), [true, true]);
    assert.deepStrictEqual(torch.ones([2]).fill_(Infinity).toArray(), [Infinity, Infinity]);
    const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
    const d = new GaussianDiffusion(toy, { imageSize: 4, channels: 3, timesteps: 10 });
    const x = torch.full([1, 3, 4, 4], NaN);
    const t = torch.tensor([3]);
    const p = d.predict(x, t);
    assert.ok(p.eps.isnan().all().item());
    assert.ok(d.qSample(x, t, torch.zerosLike(x)).isnan().all().item());
    assert.ok(Number.isNaN(d.pLosses(x, t, torch.zerosLike(x)).item() as number));
  });

  it('the diffusion pieces reject bad t and x', () => {
    const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
    const d = new GaussianDiffusion(toy, { imageSize: 4, channels: 3, timesteps: 10 });
    const x = torch.zeros([2, 3, 4, 4]);
    assert.throws(() => d.qSample(x, torch.tensor([10, 0]), x), { name: 'RangeError', message: 'qSample: t holds 10, outside the schedule\'s steps 0..9 (10 steps)' });
    assert.throws(() => d.qSample(x, torch.tensor([-1, 0]), x), { name: 'RangeError', message: 'qSample: t holds -1, outside the schedule\'s steps 0..9 (10 steps)' });
    assert.throws(() => d.pLosses(x, torch.tensor([0, 12]), x), { name: 'RangeError', message: 'pLosses: t holds 12, outside the schedule\'s steps 0..9 (10 steps)' });
    assert.throws(() => d.predict(x, torch.tensor([0, 10])), { name: 'RangeError', message: 'predict: t holds 10, outside the schedule\'s steps 0..9 (10 steps)' });
    const respaced = new GaussianDiffusion(toy, { imageSize: 4, channels: 3, timesteps: 10, timestepRespacing: '5' });
    assert.throws(() => respaced.predict(x, torch.tensor([5, 0])), { name: 'RangeError', message: 'predict: t holds 5, outside the schedule\'s steps 0..4 (5 steps, respaced)' });
    assert.strictEqual(respaced.predict(x, torch.tensor([4, 0])).eps.shape.join('x'), '2x3x4x4');
    assert.throws(() => d.qSample(x, torch.tensor([0.5, 1]), x), { name: 'TypeError', message: 'qSample: t must be an integer tensor of step indices in [0, 10), not float32' });
    assert.throws(() => d.qSample(x, torch.tensor(1), x), { name: 'RangeError', message: 'qSample: t must be a 1-D tensor of step indices, one per sample; got shape []' });
    assert.throws(() => d.predict(torch.zeros([2, 5]), torch.tensor([0, 1])), {
      message: 'the diffusion model returned a tensor of shape [2, 1, 2, 5]; expected [2, 5] (the shape of its input)',
    });
    assert.throws(() => d.predict(x, 'x' as never), { name: 'TypeError', message: "Expected Tensor for t but received 'x'" });
    assert.throws(() => d.pLosses(x, torch.tensor([0, 1]), torch.zeros([1])), { message: 'noise must have the shape of x0 [2, 3, 4, 4]; got [1]' });
  });
});
