// Shared test helpers: fixture paths, raw float32 files, numeric comparisons.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { loadFashionMnist, torch } from '../lib';
import { CHECKPOINTING_NOTE } from '../lib/cli-train-openai';

/** test/fixtures, whether running from test/ or from dist/test/. */
export const FIXTURES = path.resolve(__dirname, '..', '..', 'test', 'fixtures');
export const REFERENCE = path.join(FIXTURES, 'reference-case');

let python: string | undefined;
/**
 * The python that runs the Python cross-checks: the first of PYTHON, the venv that
 * scripts/python-env.js made where the system python refuses pip, python3 that has torch.
 */
export function testPython(): string {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  python ??= (require(path.resolve(__dirname, '..', '..', 'scripts', 'python-env.js')) as { testPython(): string }).testPython();
  return python;
}

export function readF32(file: string): Float32Array {
  const buf = fs.readFileSync(file);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

export function referenceCase(): {
  tensors: Record<string, number[]>;
  forward_t: number[];
  y: number[];
  classifier_scale: number;
  image_size: number;
  batch: number;
  num_classes: number;
} {
  return JSON.parse(fs.readFileSync(path.join(REFERENCE, 'case.json'), 'utf8'));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.strictEqual(a.length, b.length, `length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * The bound for a comparison measured exact on the project's machine (10x of 0 is no bound):
 * `ulps` float32 ulps of the largest expected magnitude (at least 1), room for another CPU's
 * kernels to round differently.
 */
export function f32Tol(expected: ArrayLike<number>, ulps = 10): number {
  let m = 1;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(expected[i]));
  return ulps * 2 ** -23 * m;
}

/**
 * Max abs difference within tol. Tolerances are about 10x the error measured on the
 * project's machine; GD_RECORD_ERRORS=file appends each check's measured error there (JSON
 * lines) to measure them again.
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = 'values'): number {
  const d = maxAbsDiff(actual, expected);
  if (process.env.GD_RECORD_ERRORS) fs.appendFileSync(process.env.GD_RECORD_ERRORS, JSON.stringify({ what, error: d, tol }) + '\n');
  assert.ok(d <= tol, `${what}: max abs difference ${d} exceeds ${tol}`);
  return d;
}

/** A figure a test measured, printed in the test's output (the README cites these lines). */
export function printMeasured(what: string, value: number, bound?: number): void {
  const f = (v: number): string => (v === 0 ? '0' : v.toExponential(2));
  console.log(`      measured: ${what} = ${f(value)}${bound === undefined ? '' : ` (bound ${f(bound)})`}`);
}

/** assertClose, and the measured max |difference| printed with its bound. */
export function assertCloseReported(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): number {
  const d = maxAbsDiff(actual, expected);
  printMeasured(`${what}: max |difference|`, d, tol);
  return assertClose(actual, expected, tol, what);
}

/**
 * One iteration of the soak's tensor-op mix (test/reliability-soak and bench/soak.ts): a tidy
 * chain, a dispose of split results, and an op that throws inside tidy (its error path must
 * free what it made too).
 */
export function mixedTensorOp(i: number): void {
  if (i % 3 === 0) {
    torch.tidy(() => torch.randn([32, 32]).matmul(torch.randn([32, 32])).softmax(-1).sum(0));
  } else if (i % 3 === 1) {
    const a = torch.rand([16, 16]);
    const b = a.mul(2).add_(1);
    const [c, e] = b.chunk(2);
    torch.dispose([a, b, c, e]);
  } else {
    try {
      torch.tidy(() => torch.ones([2, 3]).add(torch.ones([4])));
    } catch {
      // expected: a shape mismatch
    }
  }
}

/**
 * torch.memory() once earlier tests' garbage is collected: a tensor left to the GC by another
 * test can be freed in the middle of this one, and a baseline that counted it is then too high.
 */
export async function collectedMemory(): Promise<{ tensors: number; bytes: number }> {
  const gc = (global as { gc?: () => void }).gc;
  for (let i = 0; i < 2; i++) {
    gc?.();
    for (let k = 0; k < 3; k++) await new Promise((r) => setImmediate(r));
  }
  return torch.memory();
}

/** lucidrains' linear_beta_schedule for T steps: the cumulative products of 1 - beta, in doubles. */
export function linearAlphaBars(T: number): number[] {
  const scale = 1000 / T, start = scale * 0.0001, end = scale * 0.02;
  const out: number[] = [];
  let ab = 1;
  for (let i = 0; i < T; i++) {
    ab *= 1 - (start + ((end - start) * i) / (T - 1));
    out.push(ab);
  }
  return out;
}

/**
 * The first `count` Fashion-MNIST training images written as 28x28 grayscale PNGs named
 * `<class>_<i>.png` (their image_datasets.py's labels), image i into dirFor(i) (made when missing).
 */
export async function writeFashionMnistPngs(count: number, dirFor: (i: number) => string): Promise<void> {
  const fm = loadFashionMnist({ limit: count });
  const px = fm.images.add(1).mul(127.5).round().to('uint8');
  const bytes = px.data() as Uint8Array;
  const labels = Array.from(fm.labels.data() as BigInt64Array, Number);
  for (let i = 0; i < count; i++) {
    const dir = dirFor(i);
    fs.mkdirSync(dir, { recursive: true });
    const name = `${fm.classNames[labels[i]].replace(/[^A-Za-z]/g, '')}_${i}.png`;
    await sharp(Buffer.from(bytes.slice(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).toFile(path.join(dir, name));
  }
  torch.dispose([fm.images, fm.labels, px]);
}

/** Asserts that each named file is the same, byte for byte, in both folders; prints the count. */
export function assertSameFiles(cliDir: string, libDir: string, names: string[]): void {
  for (const n of names) assert.ok(fs.readFileSync(path.join(cliDir, n)).equals(fs.readFileSync(path.join(libDir, n))), `${n} differs`);
  console.log(`      ${names.length} checkpoint files of the CLI equal the library's byte for byte`);
}

/**
 * A training CLI run (one step, logged) without and with `--use_checkpoint True`: the second says
 * it checkpoints and logs what the first logs. run(extra flags, out folder name).
 */
export function assertSameStepWithCheckpointing(run: (extra: string, dir: string) => { status: number | null; stderr: string }): void {
  const plain = run('', 'no-checkpointing');
  const ckpt = run(' --use_checkpoint True', 'checkpointing');
  assert.strictEqual(plain.status, 0, plain.stderr);
  assert.strictEqual(ckpt.status, 0, ckpt.stderr);
  assert.ok(ckpt.stderr.includes(CHECKPOINTING_NOTE), ckpt.stderr);
  assert.ok(!plain.stderr.includes(CHECKPOINTING_NOTE));
  const steps = (stderr: string): string[] => stderr.split('\n').filter((l) => l.startsWith('step '));
  assert.strictEqual(steps(ckpt.stderr).length, 1);
  assert.deepStrictEqual(steps(ckpt.stderr), steps(plain.stderr));
  console.log(`      with and without: ${steps(ckpt.stderr)[0].slice(0, 120)}...`);
}
