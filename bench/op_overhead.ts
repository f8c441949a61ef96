// Per-op overhead: what one small tensor op costs from TypeScript (through N-API) and from
// Python, side by side. Our side runs in this process; Python's in a child (op_overhead.py).
//   node dist/bench/op_overhead.js [--threads N] [--quick] [--json]
// Cases (same names on both sides):
//   add       c = a.add(b) on 1x1 tensors; ours disposes c at once (Python frees it by refcount)
//   add-gc    the same, ours leaves c to the garbage collector (what naive code does)
//   add_      acc.add_(b) in place: no new tensor, so no new JS handle
//   numel     a.numel (ours, a native getter) / a.numel() (Python): the crossing alone
//   matmul64  a 64x64 @ 64x64 float32 matmul, result disposed
import * as path from 'path';
import { torch } from '../lib';
import { BENCH_SRC, PYTHON, emitResult, median, runChild } from './common';
import { OpCase, OpOverheadResult, opOverheadTable } from './op_report';

function timeOp(fn: () => void, iterations: number, repeats = 5): number {
  for (let i = 0; i < Math.max(1, iterations / 10); i++) fn();
  const runs: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    runs.push(Number(process.hrtime.bigint() - t0) / iterations);
  }
  return median(runs);
}

function measureOurs(scale: number): Record<OpCase, number> {
  const a = torch.ones([1, 1]);
  const b = torch.ones([1, 1]);
  const acc = torch.zeros([1, 1]);
  const m1 = torch.randn([64, 64]);
  const m2 = torch.randn([64, 64]);
  const nSmall = Math.round(200_000 * scale);
  const nMat = Math.round(20_000 * scale);
  let sink = 0;
  const result: Record<OpCase, number> = {
    add: timeOp(() => a.add(b).dispose(), nSmall),
    'add-gc': timeOp(() => {
      a.add(b);
    }, nSmall),
    add_: timeOp(() => {
      acc.add_(b);
    }, nSmall),
    numel: timeOp(() => {
      sink += a.numel;
    }, nSmall),
    matmul64: timeOp(() => m1.matmul(m2).dispose(), nMat),
  };
  if (sink < 0) console.log(sink);
  return result;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const threadsAt = args.indexOf('--threads');
  const threads = threadsAt >= 0 ? Number(args[threadsAt + 1]) : 2;
  const scale = args.includes('--quick') ? 0.1 : 1;
  torch.setNumThreads(threads);
  const ours = measureOurs(scale);
  const used = process.cpuUsage();
  const py = await runChild<{ nsPerOp: Record<OpCase, number>; cpuMs: number }>(PYTHON, [
    path.join(BENCH_SRC, 'op_overhead.py'),
    JSON.stringify({ threads, scale }),
  ]);
  const result: OpOverheadResult = {
    ours,
    python: py.result.nsPerOp,
    threads,
    cpuMs: (used.user + used.system) / 1000 + py.result.cpuMs,
  };
  if (args.includes('--json')) emitResult(result);
  else console.log(opOverheadTable(result));
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
