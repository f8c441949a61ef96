// npm run bench [-- --quick] [-- --case NAME] [-- --rounds N] [-- --threads N] [-- --out FILE]
//
// Runs our sampler and a Python PyTorch mirror of the reference side by side, each in its own
// child process with the same thread count, weights, batch, steps and seed, and prints per-step
// times, the ratio Python / ours, and both sides' peak memory. A full run (no --case, no
// --quick) writes bench/RESULTS.md; otherwise pass --out FILE to keep the report.
// Cases: ddpm, shipped, seed, js-condfn, scaling, profile, op-overhead, training (bench/training.ts).
// Nothing here asserts a time.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BenchOptions, CASES, CaseResult, flopBoundMs, MALLOC_TUNED_TEXT, Pair, QUIET_CORES, summarize, Summary } from './cases';
import { BENCH_SRC, fmt, killChildren, setChildNice, machineInfo, MachineInfo, mib, runChild, table, waitForQuiet } from './common';
import { OpOverheadResult, opOverheadTable } from './op_report';
import { profileSection } from './profile_report';
import { trainingSection } from './training';

const ALL = [...Object.keys(CASES), 'profile', 'op-overhead', 'training'];

interface Args {
  quick: boolean;
  only?: string;
  rounds: number;
  threads: number;
  out?: string;
  waitBudgetS: number;
  patienceS?: number;
  nice?: number;
  device: 'cpu' | 'cuda';
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, rounds: 3, threads: 2, waitBudgetS: 120, device: 'cpu' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') args.quick = true;
    else if (a === '--case') args.only = value();
    else if (a === '--rounds') args.rounds = Number(value());
    else if (a === '--threads') args.threads = Number(value());
    else if (a === '--out') args.out = value();
    else if (a === '--max-wait') args.waitBudgetS = Number(value());
    else if (a === '--patience') args.patienceS = Number(value());
    else if (a === '--nice') args.nice = Number(value());
    else if (a === '--device') {
      const d = value();
      if (d !== 'cpu' && d !== 'cuda') throw new Error(`--device must be cpu or cuda; got ${d}`);
      args.device = d;
    }
    else if (a === '--help' || a === '-h') {
      console.log(`usage: npm run bench -- [--quick] [--case ${ALL.join('|')}] [--rounds N] [--threads N] [--out FILE] [--max-wait SECONDS] [--patience SECONDS] [--nice N] [--device cpu|cuda]`);
      console.log('  --max-wait: in all, how long to wait for the machine to be quiet before children (default 120)');
      console.log('  --patience: until how long into the run a round disturbed by other processes is measured again (default 300; quick 0)');
      console.log('  --nice: run the children under nice -n N (e.g. -10 as root, to measure ahead of other jobs on a shared machine)');
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  if (args.only && !ALL.includes(args.only)) throw new Error(`unknown case ${args.only}; one of ${ALL.join(', ')}`);
  if (!(args.rounds >= 1) || !(args.threads >= 1)) throw new Error('--rounds and --threads must be positive');
  if (args.quick && !argv.includes('--rounds')) args.rounds = 1;
  return args;
}

// ---------------------------------------------------------------------------------------
// Report

const ratio = (py?: Summary, ours?: Summary): string => (py && ours ? `${fmt(py.msPerStep / ours.msPerStep, 2)}x` : 'n/a');
const rss = (s?: Summary): string => (s ? `${mib(s.rssPeakKiB)} (${mib(s.rssStartKiB)})` : 'n/a');
const ms = (s?: Summary, digits = 1): string => (s ? fmt(s.msPerStep, digits) : 'n/a');
const faults = (s?: Summary): string => (s ? fmt(s.faultsPerStep, 0) : 'n/a');

const bound = (p: Pair): string => (p.flops ? fmt(flopBoundMs(p.flops), 1) : 'n/a');
const overBound = (p: Pair, s?: Summary): string => (p.flops && s ? `${fmt(s.msPerStep / flopBoundMs(p.flops), 2)}x` : 'n/a');

/** The step's FLOPs and the peak they are held against, for a details table. */
function flopCells(p: Pair): string[] {
  const f = p.flops;
  if (!f) return ['n/a', 'n/a'];
  const gf = (n: number): string => fmt(n / 1e9, 3);
  const peak = `${fmt(f.peakGflops, 0)} GFLOP/s (${f.peakOp})${f.unetPeakGflops ? `; Unet at ${fmt(f.unetPeakGflops, 0)} GFLOP/s (${f.unetPeakOp})` : ''}`;
  return [`${gf(f.unetFlops + f.guidanceFlops)} (Unet ${gf(f.unetFlops)}, guidance ${gf(f.guidanceFlops)})`, peak];
}

const diffCell = (p: Pair): string =>
  p.maxAbsDiff === undefined ? 'n/a' : `${p.maxAbsDiff.toExponential(1)} (${p.maxAbs! >= 100 ? p.maxAbs!.toExponential(1) : fmt(p.maxAbs!, 2)})`;

function comparisonTables(c: CaseResult): string {
  const rows = c.rows.map(({ label, pair }) => {
    const o = pair.ours && summarize(pair.ours);
    const p = pair.python && summarize(pair.python);
    return { label, pair, o, p };
  });
  const main = table(
    ['configuration', 'ours ms/step', 'Python ms/step', 'ratio Python/ours', 'FLOP bound ms/step', 'ours / bound', 'Python / bound', 'ours peak RSS MiB (at start)', 'Python peak RSS MiB (at start)', 'page faults/step ours / Python', 'images: max abs diff (max abs value)'],
    rows.map(({ label, pair, o, p }) => [label, ms(o), ms(p), ratio(p, o), bound(pair), overBound(pair, o), overBound(pair, p), rss(o), rss(p), `${faults(o)} / ${faults(p)}`, diffCell(pair)]),
  );
  const flops = table(
    ['configuration', 'GFLOP per step (torch.utils.flop_counter)', 'matmul peak (best over the Python children)'],
    rows.map(({ label, pair }) => [label, ...flopCells(pair)]),
  );
  const details = table(
    ['configuration', 'side', 'ms/step min..max', 'ms per sample', 'first sample (warm-up) ms', 'cores used', 'other load (cores, max)', 'rounds used/run'],
    rows.flatMap(({ label, o, p }) =>
      (
        [
          ['ours', o],
          ['Python', p],
        ] as [string, Summary | undefined][]
      )
        .filter(([, s]) => s)
        .map(([side, s]) => [label, side, `${fmt(s!.minMsPerStep)}..${fmt(s!.maxMsPerStep)}`, fmt(s!.msPerSample, 0), fmt(s!.warmupMs, 0), fmt(s!.coresUsed, 2), fmt(s!.externalCores, 2), s!.rounds]),
    ),
  );
  return `${main}\n\n<details><summary>details</summary>\n\n${details}\n\n${flops}\n\n</details>`;
}

function shippedBreakdown(pair: Pair): string {
  const o = pair.ours && summarize(pair.ours);
  const p = pair.python && summarize(pair.python);
  const lines: string[] = [];
  if (p?.split) {
    lines.push(
      table(
        ['Python, inside the sampling loop', 'ms/step'],
        [
          ['Unet forward (no grad)', fmt(p.split.modelMs)],
          ['classifier_cond_fn (forward + backward)', fmt(p.split.guidanceMs)],
          ['everything else (schedule math, noise)', fmt(p.split.otherMs, 2)],
        ],
      ),
    );
  }
  if (o?.breakdown && p?.breakdown) {
    lines.push(
      table(
        ['one call on its own, same input', 'ours ms', 'Python ms', 'ratio Python/ours'],
        [
          ['Unet forward (no grad): ours unet.forward from JS', fmt(o.breakdown.modelMs), fmt(p.breakdown.modelMs), fmt(p.breakdown.modelMs / o.breakdown.modelMs, 2)],
          ['guidance gradient: ours classifierCondFn from JS', fmt(o.breakdown.condFnMs), fmt(p.breakdown.condFnMs), fmt(p.breakdown.condFnMs / o.breakdown.condFnMs, 2)],
        ],
      ),
    );
  }
  return lines.join('\n\n');
}

function jsCondFnReport(c: CaseResult, shipped?: CaseResult): string {
  const by = new Map(c.rows.map((r) => [r.key ?? r.cfg.guidance, r.pair.ours && summarize(r.pair.ours)]));
  const none = by.get('none');
  const main = table(
    ['guidance', 'ms/step', 'min..max', 'minus no guidance, ms/step', 'FLOP bound ms/step', 'ours / bound', 'peak RSS MiB (at start)', 'cores used', 'page faults/step', 'other load (cores, max)'],
    c.rows.map(({ label, cfg, key, pair }) => {
      const s = by.get(key ?? cfg.guidance);
      const base = key?.startsWith('small-') ? by.get('small-none') : none;
      return [label, ms(s, 2), s ? `${fmt(s.minMsPerStep, 2)}..${fmt(s.maxMsPerStep, 2)}` : 'n/a', s && base ? fmt(s.msPerStep - base.msPerStep, 2) : 'n/a', bound(pair), overBound(pair, s), rss(s), s ? fmt(s.coresUsed, 2) : 'n/a', faults(s), s ? fmt(s.externalCores, 2) : 'n/a'];
    }),
  );
  const native = by.get('native');
  const js = by.get('js');
  const zero = by.get('js-zero');
  const notes: string[] = [];
  const smallNone = by.get('small-none');
  const smallZero = by.get('small-js-zero');
  if (smallZero && smallNone) notes.push(`- The JS hop alone, at batch 1 where a step is short and steady (a condFn that returns zeros, minus no guidance; median of ${smallZero.rounds.split('/')[0]} children x 3 samples): **${fmt((smallZero.msPerStep - smallNone.msPerStep) * 1000, 0)} µs/step**.`);
  if (zero && none) notes.push(`- The same at batch 16: ${fmt(zero.msPerStep - none.msPerStep, 2)} ms/step (within the noise of a batch-16 step; see ms/step min..max below).`);
  if (js && native) {
    notes.push(
      `- JS classifierCondFn minus native classifierGuidance: ${fmt(js.msPerStep - native.msPerStep, 2)} ms/step (${fmt((js.msPerStep / native.msPerStep - 1) * 100, 1)}% of a native-guided step; ` +
        `compare with the spread of a step, ${fmt(native.minMsPerStep, 1)}..${fmt(native.maxMsPerStep, 1)} ms native, ${fmt(js.minMsPerStep, 1)}..${fmt(js.maxMsPerStep, 1)} ms JS).`,
    );
  }
  if (js?.breakdown && none) {
    notes.push(
      `- classifierCondFn called directly on the JS thread takes ${fmt(js.breakdown.condFnMs, 2)} ms; inside sample() the JS guidance adds ${fmt(js.msPerStep - none.msPerStep, 2)} ms/step.`,
    );
  }
  const py = shipped?.rows[0]?.pair.python && summarize(shipped.rows[0].pair.python);
  if (py && js) notes.push(`- Against the Python mirror with the seed's cond_fn (case 1, same configuration): ratio Python/ours = ${ratio(py, js)} with JS classifierCondFn, ${ratio(py, native)} with native classifierGuidance.`);
  return [main, notes.join('\n')].filter(Boolean).join('\n\n');
}

/** Case 0 against issue 13's aims (>= 2x tuned Python at float32, within 1.3x of the FLOP bound), from its first row. */
function ddpmAims(c: CaseResult): string {
  const pair = c.rows[0]?.pair;
  const o = pair?.ours && summarize(pair.ours);
  const p = pair?.python && summarize(pair.python);
  if (!pair?.flops || !o || !p) return '';
  const b = flopBoundMs(pair.flops);
  return (
    `Aims (first row, float32): Python / ours = ${fmt(p.msPerStep / o.msPerStep, 2)}x (aim >= 2x); ours / FLOP bound = ${fmt(o.msPerStep / b, 2)}x (aim <= 1.3x). ` +
    `No sampler can beat the bound, so the most any could be ahead of this Python is Python / bound = ${fmt(p.msPerStep / b, 2)}x` +
    `${p.msPerStep / b < 2 ? ': the 2x aim at float32 is out of reach while the tuned Python runs within 2x of the bound (see case profile for where both sides spend the rest)' : ''}.`
  );
}

function machineSection(m: MachineInfo, loadAfter: number[], args: Args, minutes: number): string {
  return table(
    ['', ''],
    [
      ['CPU (lscpu model name)', m.cpu],
      ['cores', String(m.cores)],
      ['memory', `${m.memoryGiB} GiB`],
      ['node', m.node],
      ['torch (Python side)', m.torchPython],
      ['LibTorch headers (our side builds against the same package)', m.libtorch],
      ['OS', m.kernel],
      ['date', m.date],
      ['commit measured', m.commit],
      ['threads per side', `${args.threads} (torch.setNumThreads / torch.set_num_threads)`],
      ['rounds per configuration and side', String(args.rounds)],
      ['children run under', args.nice === undefined ? 'default priority' : `nice -n ${args.nice} (ahead of the other jobs on the machine)`],
      ['load average at start, at end', `${m.loadavg.join(', ')}; ${loadAfter.map((v) => v.toFixed(2)).join(', ')}`],
      ['bench wall time', `${minutes.toFixed(1)} min`],
    ],
  );
}

const METHOD = `## Method

- Each side runs in a child process of its own, one configuration per process (so its peak
  resident set is that configuration's): ours is \`node dist/bench/worker.js\` calling
  \`GaussianDiffusion.sample()\` as a user does (the loop runs on the addon's sampling thread);
  Python's is \`python3 bench/python_sampler.py\` (the loop on the main thread, unless a row
  says otherwise). Rounds alternate which side goes first; each child takes one untimed
  warm-up sample of 2 steps (the TorchScript executor profiles on the first call and
  optimizes on the second; 1 step in case 2, whose steps take seconds), then one timed
  sample. Tables give the median over the rounds that other processes left alone (see the
  last point), or over all rounds when none was.
- Same network and weights: a node child builds the native \`Unet\` and \`Classifier\` with
  \`torch.manualSeed(1234)\`, writes them with \`save()\` (TorchScript) and \`saveSafetensors()\`.
  Our side builds the native models and loads the safetensors. **Python runs the reference
  Unet as the reference does, eagerly**: \`scripts/fixtures/models_spec_check.py\` writes
  docs/reference-unet.md out as plain PyTorch ops (\`F.normalize\`, \`einsum\`, as the
  reference's nn.Module), on the weights of the TorchScript file; its classifier is the
  TorchScript file. Where a row says "our TorchScript Unet", Python loads our scripted Unet
  with \`torch.jit.load\` instead: the same graph as ours, so what is left is the sampler.
- \`bench/python_sampler.py\` mirrors docs/diffusion-math.md in plain PyTorch: sigmoid
  schedule in float64 stored as float32, pred_noise with x0 clipped, DDIM steps with
  condition_score or ancestral steps with condition_mean evaluated at the mean, the seed's
  \`classifier_cond_fn\` as written, noise drawn in the reference's order. Same seed (42), same
  labels, classifier scale 3: the last column compares the two sides' images (a guided DDIM
  x0 is not clamped after condition_score, so on random weights its values are large; read
  the difference against the largest value).
- **Both sides run with glibc's malloc tuned** (\`${MALLOC_TUNED_TEXT}\`) unless a row
  says "malloc defaults": without it the Python side spends most of a step in page faults
  (freed blocks go back to the kernel and are faulted in again), which says more about glibc
  than about either sampler.
- **FLOP bound**: the Python child counts one step's FLOPs with
  \`torch.utils.flop_counter.FlopCounterMode\` (convolutions and matmuls: the Unet's forward,
  plus the classifier's forward and its backward to x when guided) and times a 2048x2048
  \`torch.mm\` in the same process and threads (best of 5): FLOPs / that peak is the time a
  step cannot beat at the machine's sgemm rate (under bfloat16 autocast the Unet's FLOPs are
  held against a bfloat16 \`torch.mm\`). The bound takes the best peak over a row's Python
  children; rows that time ours alone get a Python child that only counts. "ours / bound"
  is ours ms/step over it (1.00x would be every FLOP at the sgemm peak, with nothing else).
- Per step = wall time of the sample / steps. "cores used" = process CPU time / wall time
  while sampling. Page faults: minor faults of the process while sampling, per step.
  Peak RSS: \`process.resourceUsage().maxRSS\` (ours) and \`resource.getrusage(RUSAGE_SELF).ru_maxrss\`
  (Python); "at start" = after loading torch, before any model.
- **The machine is shared with other jobs (compilers, test runs).** Before each child the
  bench waits (within a budget) until other processes keep fewer than 0.3 cores busy; "other
  load" is the CPU time other processes took while a child ran (from /proc/stat), in cores,
  and a round with more than 0.3 is measured again while the run's patience lasts. With 2
  threads on 2 cores any other load makes OpenMP threads wait for each other (the Python
  side suffers more from it than ours): rows whose other load is above ~0.3 are noise.`;

const FINDINGS_START = '<!-- findings:start -->';
const FINDINGS_END = '<!-- findings:end -->';

function keptFindings(file: string): string {
  if (!fs.existsSync(file)) return '';
  const text = fs.readFileSync(file, 'utf8');
  const a = text.indexOf(FINDINGS_START);
  const b = text.indexOf(FINDINGS_END);
  return a >= 0 && b > a ? text.slice(a, b + FINDINGS_END.length) : '';
}

// ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const machine = await machineInfo();
  setChildNice(args.nice);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-bench-'));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killChildren();
      fs.rmSync(workDir, { recursive: true, force: true });
      process.exit(130);
    });
  }
  const opts: BenchOptions = {
    quick: args.quick,
    rounds: args.rounds,
    threads: args.threads,
    workDir,
    quietCores: QUIET_CORES,
    waitBudgetMs: args.waitBudgetS * 1000,
    retryUntil: started + (args.patienceS ?? (args.quick ? 0 : 300)) * 1000,
    device: args.device,
    log: (line) => console.log(line),
  };
  console.log(`guided-diffusion bench: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, torch ${machine.torchPython}; ${args.threads} threads, ${args.rounds} round(s)${args.quick ? ', quick' : ''}`);
  const names = args.only ? [args.only] : ALL;
  const sections: string[] = [];
  const results = new Map<string, CaseResult>();
  try {
    for (const name of names) {
      console.log(`\n== ${name}`);
      if (name === 'op-overhead') {
        await waitForQuiet(opts.quietCores, 30_000);
        const child = await runChild<OpOverheadResult>(process.execPath, [
          path.join(__dirname, 'op_overhead.js'),
          '--json',
          '--threads',
          String(args.threads),
          ...(args.quick ? ['--quick'] : []),
        ]);
        const body = `${opOverheadTable(child.result)}\n\nOther load while measuring: ${fmt(child.externalCores, 2)} cores. Ours: a JS call into the addon (N-API), a new \`at::Tensor\` and a new JS wrapper object per result; Python: a C call and a new \`torch.Tensor\`. Iterations: 200k (small ops), 20k (matmul), median of 5 repeats.`;
        console.log(body);
        sections.push(`## (5) Per-op overhead: TypeScript vs Python\n\n${body}`);
        continue;
      }
      if (name === 'training') {
        const section = await trainingSection(opts);
        console.log(`\n${section}`);
        sections.push(section);
        continue;
      }
      if (name === 'profile') {
        const body = await profileSection(opts);
        console.log(body);
        sections.push(`## (0b) One guided step of case 0, op by op (torch.profiler)\n\n${body}`);
        continue;
      }
      const c = await CASES[name](opts);
      results.set(name, c);
      let body = name === 'js-condfn' ? jsCondFnReport(c, results.get('shipped')) : comparisonTables(c);
      if (name === 'shipped') body += `\n\nWhere the time goes (configuration as above):\n\n${shippedBreakdown(c.rows[0].pair)}`;
      if (name === 'ddpm') body += `\n\n${ddpmAims(c)}\n\nWhere the time goes (first row):\n\n${shippedBreakdown(c.rows[0].pair)}`;
      const cfg = c.rows[0].cfg;
      const guided = c.rows.some((r) => r.cfg.guidance !== 'none');
      const what = `Unet(${JSON.stringify(cfg.models.unet)})${guided ? `, Classifier(${JSON.stringify(cfg.models.classifier)})` : ''}`;
      const section = `## ${c.title}\n\n${what}; ${cfg.timesteps === 1000 ? 'T = 1000' : `T = ${cfg.timesteps}`}, classifier scale 3 where guided.\n\n${body}`;
      console.log(`\n${section}`);
      sections.push(section);
    }
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  const minutes = (Date.now() - started) / 60000;
  const full = !args.only && !args.quick && args.device === 'cpu';
  const out = args.out ? path.resolve(args.out) : full ? path.join(BENCH_SRC, 'RESULTS.md') : undefined;
  if (out) {
    const findings = keptFindings(out) || `${FINDINGS_START}\n## Findings\n\n(none written yet)\n${FINDINGS_END}`;
    const md = [
      '# Benchmark: our sampler vs a Python PyTorch mirror of the reference',
      `Generated by \`npm run bench\`${process.argv.length > 2 ? ` (\`${process.argv.slice(2).join(' ')}\`)` : ''}. Ratios above 1 mean we are faster. Regenerate with \`npm run bench\` (about 15 minutes; \`-- --quick\` for a short run, \`-- --case NAME\` for one of ${ALL.join(', ')}). The section between the findings markers is kept across runs.`,
      '## Machine',
      machineSection(machine, os.loadavg(), args, minutes),
      METHOD,
      ...sections,
      findings,
    ].join('\n\n');
    fs.writeFileSync(out, `${md}\n`);
    console.log(`\nwrote ${path.relative(process.cwd(), out)}`);
  }
  console.log(`\ndone in ${minutes.toFixed(1)} min`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
