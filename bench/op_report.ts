// The per-op overhead report's types and table, apart from op_overhead.ts so that the bench
// parent can print it without loading the addon itself.
import { fmt, table } from './common';

export const OP_CASES = ['add', 'add-gc', 'add_', 'numel', 'matmul64'] as const;
export type OpCase = (typeof OP_CASES)[number];

export interface OpOverheadResult {
  ours: Record<OpCase, number>;
  python: Record<OpCase, number>;
  threads: number;
  cpuMs: number;
}

export function opOverheadTable(r: OpOverheadResult): string {
  const label: Record<OpCase, string> = {
    add: '`a.add(b)` 1x1, result disposed',
    'add-gc': '`a.add(b)` 1x1, result left to GC',
    add_: '`acc.add_(b)` 1x1, in place',
    numel: '`a.numel` (no tensor op)',
    matmul64: '`a.matmul(b)` 64x64',
  };
  return table(
    ['op', 'ours ns/op', 'Python ns/op', 'ratio (Python / ours)'],
    OP_CASES.map((c) => [label[c], fmt(r.ours[c], 0), fmt(r.python[c], 0), fmt(r.python[c] / r.ours[c], 2)]),
  );
}
