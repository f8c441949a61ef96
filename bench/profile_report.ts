// Case `profile`: where one guided step of the headline configuration (case 0) goes, op by op,
// on both sides (bench/profile_step.py: our TorchScript graphs vs the reference run eagerly),
// and how much of it the FLOP bound counts at all.
import * as path from 'path';
import { BenchOptions, ddpmConfig, MALLOC_TUNED, specFor } from './cases';
import { BENCH_SRC, fmt, PYTHON, runChild, table, waitForQuiet } from './common';

interface OpRow {
  name: string;
  selfMs: number;
  calls: number;
  share: number;
}

interface SideProfile {
  msPerStep: number;
  profiledMsPerStep: number;
  top: OpRow[];
  kinds: { kind: string; selfMs: number; share: number }[];
}

interface ProfileResult {
  ours: SideProfile;
  python: SideProfile;
  threads: number;
  cpuMs: number;
}

const pct = (v: number): string => `${fmt(v * 100, 1)}%`;

// The kinds whose FLOPs torch's flop counter counts (the rest costs time but no counted FLOPs).
const COUNTED = new Set(['convolution', 'convolution backward', 'matmul (einsum, bmm, mm, linear)']);

export async function profileSection(opts: BenchOptions): Promise<string> {
  const cfg = await ddpmConfig(opts);
  const spec = { ...specFor(cfg, opts), profileSteps: opts.quick ? 3 : 10 };
  await waitForQuiet(opts.quietCores, 30_000);
  const child = await runChild<ProfileResult>(PYTHON, [path.join(BENCH_SRC, 'profile_step.py'), JSON.stringify(spec)], MALLOC_TUNED);
  const r = child.result;
  const sides: [string, SideProfile][] = [
    ['ours (our TorchScript Unet + classifier, torch.jit.load)', r.ours],
    ['Python (reference Unet eager + cond_fn)', r.python],
  ];
  const kinds = [...new Set([...r.ours.kinds, ...r.python.kinds].map((k) => k.kind))];
  const kindOf = (s: SideProfile, k: string): string => {
    const row = s.kinds.find((x) => x.kind === k);
    return row ? `${fmt(row.selfMs, 2)} (${pct(row.share)})` : '-';
  };
  const byKind = table(
    ['kind of op (self time)', 'ours ms/step (share)', 'Python ms/step (share)'],
    [...kinds.map((k) => [k, kindOf(r.ours, k), kindOf(r.python, k)]), ['step, unprofiled wall time', fmt(r.ours.msPerStep, 2), fmt(r.python.msPerStep, 2)]],
  );
  const tops = sides.map(([label, s]) =>
    table([`${label}: top ops`, 'ms/step', 'share', 'calls/step'], s.top.slice(0, 10).map((o) => [`\`${o.name}\``, fmt(o.selfMs, 2), pct(o.share), fmt(o.calls, 0)])),
  );
  const counted = (s: SideProfile): number => s.kinds.filter((k) => COUNTED.has(k.kind)).reduce((a, k) => a + k.share, 0);
  const note =
    `Convolutions (forward and backward) and matmuls, the ops whose FLOPs the bound counts, take ${pct(counted(r.ours))} of our profiled step ` +
    `and ${pct(counted(r.python))} of Python's; the rest is time no FLOP bound sees (normalization, elementwise ops, copies, the executor and autograd). ` +
    `Other load while profiling: ${fmt(child.externalCores, 2)} cores; ${r.threads} threads; torch.profiler self CPU time of the calling thread, ${spec.profileSteps} steps, the better of two rounds per side (sides alternating).`;
  return [note, byKind, ...tops].join('\n\n');
}
