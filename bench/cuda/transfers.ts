// Host <-> CUDA copies: ours (torch.tensor(Float32Array, { device: 'cuda' }) through pinned
// memory, toFloat32Array() back through pinned memory) against Python's usual
// torch.from_numpy(a).to('cuda') / t.cpu().numpy(), and Python with pin_memory(), in one run.
//   node dist/bench/cuda/transfers.js      (needs a CUDA device; prints a markdown table)
import { execFileSync } from 'child_process';
import * as path from 'path';
import { torch } from '../../lib';
import { BENCH_SRC, PYTHON, timeMedian } from '../common';

const SIZES = [64 * 32 * 32, 4 << 20, 32 << 20]; // a batch of 64 32x32 images; 16 MiB; 128 MiB

function main(): void {
  if (!torch.cuda.isAvailable()) throw new Error('transfers: no CUDA device');
  const py = JSON.parse(execFileSync(PYTHON, [path.join(BENCH_SRC, 'cuda', 'transfers.py'), JSON.stringify(SIZES)], { encoding: 'utf8' })) as Record<string, number>;
  console.log('| copy | MiB | ours ms | Python ms (pageable) | ratio | Python ms (pin_memory) | ratio |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  const fmt = (x: number): string => x.toFixed(3);
  for (const n of SIZES) {
    const host = torch.randn([n]).toFloat32Array();
    const mib = (n * 4) / (1 << 20);
    const up = timeMedian(() => torch.tidy(() => torch.tensor(host, { device: 'cuda' }).sum().item()), 20);
    const a = py[`h2d-${n}-pageable`];
    const b = py[`h2d-${n}-pinned`];
    console.log(`| host to CUDA, then sum().item() | ${mib} | ${fmt(up)} | ${fmt(a)} | ${(a / up).toFixed(2)}x | ${fmt(b)} | ${(b / up).toFixed(2)}x |`);
    const dev = torch.tensor(host, { device: 'cuda' });
    const down = timeMedian(() => dev.toFloat32Array(), 20);
    const d = py[`d2h-${n}`];
    console.log(`| CUDA to host (toFloat32Array / .cpu().numpy()) | ${mib} | ${fmt(down)} | ${fmt(d)} | ${(d / down).toFixed(2)}x | | |`);
    dev.dispose();
  }
}

main();
