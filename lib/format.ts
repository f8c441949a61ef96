// Tensor -> string in PyTorch's print style: tensor([[ 1.5410, -0.2934], ...]).
import type { DType } from './binding';

const LINE_WIDTH = 80;
const SUMMARIZE_OVER = 1000;
const EDGE_ITEMS = 3;

type Fmt = (v: number | bigint) => string;

function makeFormatter(values: (number | bigint)[], dtype: DType): { fmt: Fmt; width: number } {
  let fmt: Fmt;
  if (dtype === 'bool') {
    fmt = (v) => (Number(v) ? 'True' : 'False');
  } else if (dtype === 'int64' || dtype === 'int32' || dtype === 'uint8') {
    fmt = (v) => String(v);
  } else {
    const finite = values.map(Number).filter((v) => Number.isFinite(v));
    const nonzero = finite.map(Math.abs).filter((v) => v !== 0);
    const intMode = finite.every((v) => Math.ceil(v) === v);
    const max = nonzero.length ? Math.max(...nonzero) : 0;
    const min = nonzero.length ? Math.min(...nonzero) : 0;
    const special = (v: number): string | null => (Number.isNaN(v) ? 'nan' : !Number.isFinite(v) ? (v > 0 ? 'inf' : '-inf') : null);
    const sci = (v: number): string => {
      const [m, e] = v.toExponential(4).split('e');
      const exp = Number(e);
      return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
    };
    if (intMode) {
      fmt = max > 1e8 ? (v) => special(Number(v)) ?? sci(Number(v)) : (v) => special(Number(v)) ?? `${Number(v).toFixed(0)}.`;
    } else if (max / min > 1000 || max > 1e8 || (min < 1e-4 && nonzero.length > 0)) {
      fmt = (v) => special(Number(v)) ?? sci(Number(v));
    } else {
      fmt = (v) => special(Number(v)) ?? Number(v).toFixed(4);
    }
  }
  const width = values.reduce<number>((w, v) => Math.max(w, fmt(v).length), 0);
  return { fmt, width };
}

export function formatTensor(
  flat: ArrayLike<number | bigint>,
  shape: readonly number[],
  dtype: DType,
  device: string,
  requiresGrad: boolean,
): string {
  const numel = flat.length;
  const summarize = numel > SUMMARIZE_OVER;
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const shown = (n: number): number[] =>
    summarize && n > 2 * EDGE_ITEMS
      ? [...Array(EDGE_ITEMS).keys(), -1, ...Array.from({ length: EDGE_ITEMS }, (_, i) => n - EDGE_ITEMS + i)]
      : [...Array(n).keys()];
  const visible: (number | bigint)[] = [];
  const collect = (dim: number, offset: number): void => {
    if (dim === shape.length) {
      visible.push(flat[offset]);
      return;
    }
    for (const i of shown(shape[dim])) if (i >= 0) collect(dim + 1, offset + i * strides[dim]);
  };
  collect(0, 0);
  const { fmt, width } = makeFormatter(visible, dtype);
  const cell = (v: number | bigint): string => fmt(v).padStart(width);

  const prefix = 'tensor(';
  const render = (dim: number, offset: number, indent: number): string => {
    if (shape.length === 0) return cell(flat[0]);
    const idx = shown(shape[dim]);
    if (dim === shape.length - 1) {
      const cells = idx.map((i) => (i < 0 ? '...' : cell(flat[offset + i])));
      const perLine = Math.max(1, Math.floor((LINE_WIDTH - indent) / (width + 2)));
      const lines: string[] = [];
      for (let i = 0; i < cells.length; i += perLine) lines.push(cells.slice(i, i + perLine).join(', '));
      return `[${lines.join(',\n' + ' '.repeat(indent + 1))}]`;
    }
    const parts = idx.map((i) => (i < 0 ? '...' : render(dim + 1, offset + i * strides[dim], indent + 1)));
    const sep = ',' + '\n'.repeat(shape.length - dim - 1) + ' '.repeat(indent + 1);
    return `[${parts.join(sep)}]`;
  };
  let body = numel === 0 && shape.length > 0 ? '[]' : render(0, 0, prefix.length);
  const suffix: string[] = [];
  if (numel === 0 && shape.length > 1) suffix.push(`size=(${shape.join(', ')})`);
  if (device !== 'cpu') suffix.push(`device='${device}'`);
  if (dtype !== 'float32' && dtype !== 'int64' && dtype !== 'bool') suffix.push(`dtype=torch.${dtype}`);
  if (requiresGrad) suffix.push('requires_grad=True');
  if (suffix.length) body += ', ' + suffix.join(', ');
  return `${prefix}${body})`;
}
