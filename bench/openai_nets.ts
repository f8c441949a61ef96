// The paper's own networks on both sides (issue 19): openai/guided-diffusion's 64x64 and
// 128x128 ImageNet UNet and classifier, random weights drawn by their code and loaded from the
// same .pt files by both, guided DDIM as their classifier_sample.py runs it.
//
//   npm run bench:openai -- --repo PATH [--rounds N] [--quick] [--out FILE]
//
// PATH is a checkout of openai/guided-diffusion (default GD_OPENAI_REPO). Each configuration
// runs each side in a fresh child per round, alternating who goes first; both children get
// glibc's malloc tuned (MALLOC_TUNED, as bench/run.ts). Per row: wall ms per step (median of
// the timed steps), CPU ms per step (all threads; less sensitive to other load on the
// machine), page faults per step, peak RSS; then the FLOP bound of a step and an op-level
// profile of one guided step on both sides. Writes bench/OPENAI_NETS.md (or --out).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MALLOC_TUNED, MALLOC_TUNED_TEXT } from './cases';
import { BENCH_SRC, PYTHON, ROOT, fmt, median, mib, runChild, sourceCommit, table } from './common';
import type { OpenAIProfile, OpenAIResult, OpenAISpec } from './openai_spec';
import { openai } from '../lib';
import { OpenaiBenchArgs, parseOpenaiBenchArgs } from './openai_args';

const NETS = {
  '64x64': {
    model: '--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --dropout 0.1 --image_size 64 --learn_sigma True ' +
      '--noise_schedule cosine --num_channels 192 --num_head_channels 64 --num_res_blocks 3 --resblock_updown True ' +
      '--use_new_attention_order True --use_fp16 False --use_scale_shift_norm True',
    classifier: '--image_size 64 --classifier_attention_resolutions 32,16,8 --classifier_depth 4 --classifier_width 128 ' +
      '--classifier_pool attention --classifier_resblock_updown True --classifier_use_scale_shift_norm True --classifier_use_fp16 False',
  },
  '128x128': {
    model: '--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 128 --learn_sigma True ' +
      '--noise_schedule linear --num_channels 256 --num_heads 4 --num_res_blocks 2 --resblock_updown True --use_fp16 False ' +
      '--use_scale_shift_norm True',
    classifier: '--image_size 128 --classifier_attention_resolutions 32,16,8 --classifier_depth 2 --classifier_width 128 ' +
      '--classifier_pool attention --classifier_resblock_updown True --classifier_use_scale_shift_norm True --classifier_use_fp16 False',
  },
} as const;
type NetName = keyof typeof NETS;

interface Row {
  net: NetName;
  batch: number;
  threads: number;
  autocast: 'bfloat16' | null;
}

const ROWS: Row[] = [
  { net: '64x64', batch: 4, threads: 1, autocast: null },
  { net: '64x64', batch: 4, threads: 2, autocast: null },
  { net: '64x64', batch: 4, threads: 2, autocast: 'bfloat16' },
  { net: '128x128', batch: 1, threads: 2, autocast: null },
];

type Args = OpenaiBenchArgs;

function parseArgs(argv: string[]): Args {
  return parseOpenaiBenchArgs(argv, { out: path.join(ROOT, 'bench', 'OPENAI_NETS.md'), rounds: 2, usage: 'usage: npm run bench:openai -- --repo PATH [--rounds N] [--quick] [--out FILE]', needs: 'guided_diffusion/unet.py' });
}

function python(mode: string, spec: OpenAISpec) {
  return runChild<OpenAIResult & OpenAIProfile>(PYTHON, [path.join(BENCH_SRC, 'openai_python.py'), mode, JSON.stringify(spec)], MALLOC_TUNED);
}

function ours(mode: string, spec: OpenAISpec) {
  return runChild<OpenAIResult>(process.execPath, [path.join(__dirname, 'openai_worker.js'), mode, JSON.stringify(spec)], MALLOC_TUNED);
}

function specFor(args: Args, row: Row, dir: string): OpenAISpec {
  const net = NETS[row.net];
  return {
    repo: path.resolve(args.repo),
    modelFlags: openai.parseFlags(net.model) as OpenAISpec['modelFlags'],
    classifierFlags: openai.parseFlags(net.classifier) as OpenAISpec['classifierFlags'],
    files: {
      model: path.join(dir, `${row.net}-model.pt`),
      classifier: path.join(dir, `${row.net}-classifier.pt`),
      oursModel: path.join(dir, `${row.net}-ours-model.pt`),
      oursClassifier: path.join(dir, `${row.net}-ours-classifier.pt`),
    },
    batch: row.batch,
    threads: row.threads,
    steps: args.quick ? 2 : 3,
    // Ours reaches its steady step after about four steps (its first timed steps fell step by
    // step with one untimed: 7.58, 7.41, 7.17 s in the run at e732a67); theirs is flat from the second.
    warmupSteps: args.quick ? 1 : 4,
    classifierScale: 1,
    seed: 7,
    autocast: row.autocast,
  };
}

interface Measured {
  row: Row;
  ours: OpenAIResult[];
  python: OpenAIResult[];
  externalCores: number[];
}

const stepMs = (rs: OpenAIResult[]): number => median(rs.flatMap((r) => r.msPerStep));
const cpuStepMs = (rs: OpenAIResult[]): number => median(rs.map((r) => r.cpuMsPerStep));

async function measure(args: Args, row: Row, dir: string, log: (s: string) => void): Promise<Measured> {
  const m: Measured = { row, ours: [], python: [], externalCores: [] };
  const spec = specFor(args, row, dir);
  for (let round = 0; round < args.rounds; round++) {
    const order: ('ours' | 'python')[] = round % 2 === 0 ? ['ours', 'python'] : ['python', 'ours'];
    for (const side of order) {
      const flops = side === 'python' && round === 0 && row.threads === 1 && !row.autocast;
      const child = side === 'ours' ? await ours('sample', spec) : await python('sample', { ...spec, flops });
      m[side].push(child.result);
      m.externalCores.push(child.externalCores);
      log(`${row.net} batch ${row.batch} ${row.threads}t ${row.autocast ?? 'float32'} ${side}: ${child.result.msPerStep.map((v) => fmt(v / 1000, 2)).join(', ')} s/step, cpu ${fmt(child.result.cpuMsPerStep / 1000, 2)} s/step, other load ${fmt(child.externalCores, 2)} cores`);
    }
  }
  return m;
}

function report(args: Args, measured: Measured[], profile: OpenAIProfile | null, profileRow: Row): string {
  const head = ['net', 'batch', 'threads', 'precision', 'ours s/step', 'theirs s/step', 'theirs/ours (wall)', 'ours CPU s/step', 'theirs CPU s/step', 'theirs/ours (CPU)', 'faults/step ours / theirs', 'peak RSS MiB ours / theirs', 'other load (cores)'];
  const rows = measured.map((m) => {
    const o = stepMs(m.ours);
    const p = stepMs(m.python);
    const oc = cpuStepMs(m.ours);
    const pc = cpuStepMs(m.python);
    const rss = (rs: OpenAIResult[]): number => Math.max(...rs.map((r) => r.rssPeakKiB));
    return [m.row.net, m.row.batch, m.row.threads, m.row.autocast ? 'bf16 autocast (UNet)' : 'float32', fmt(o / 1000, 2), fmt(p / 1000, 2), fmt(p / o, 2), fmt(oc / 1000, 2), fmt(pc / 1000, 2), fmt(pc / oc, 2),
      `${Math.round(median(m.ours.map((r) => r.faultsPerStep)))} / ${Math.round(median(m.python.map((r) => r.faultsPerStep)))}`, `${mib(rss(m.ours))} / ${mib(rss(m.python))}`, fmt(Math.max(...m.externalCores), 2)];
  });
  const lines = [
    '# The paper\'s networks: ours against openai/guided-diffusion\'s own code',
    '',
    `Generated by \`npm run bench:openai -- --repo PATH${args.quick ? ' --quick' : ''}\` at ${sourceCommit()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ${args.rounds} round(s) per side, alternating.`,
    '',
    'Workload: their README\'s MODEL_FLAGS and CLASSIFIER_FLAGS with use_fp16 False, random weights drawn by their code and loaded from the same .pt files by both sides, guided DDIM (classifier scale 1) as their classifier_sample.py: each step is one UNet forward and one classifier gradient. ' +
      `Timed: ${specFor(args, ROWS[0], '').steps} steps after ${specFor(args, ROWS[0], '').warmupSteps} untimed, in one sample (ours takes about four steps to reach its steady step). ` +
      `Both sides' children run with glibc's malloc tuned (${MALLOC_TUNED_TEXT}). ` +
      'Wall time suffers from other load on the machine (last column); CPU time per step (all threads of the process) much less so.',
    '',
    table(head, rows),
  ];
  const flops = measured.flatMap((m) => m.python).find((r) => r.flops)?.flops;
  const first = measured[0];
  if (flops && first) {
    const gflop = (flops.unetFlops + flops.guidanceFlops) / 1e9;
    const oursCpu = cpuStepMs(first.ours) / 1000;
    const theirsCpu = cpuStepMs(first.python) / 1000;
    lines.push('', `FLOPs of a step (64x64, batch ${first.row.batch}, torch.utils.flop_counter): UNet forward ${fmt(flops.unetFlops / 1e9, 0)} GFLOP + classifier forward and backward ${fmt(flops.guidanceFlops / 1e9, 0)} GFLOP = ${fmt(gflop, 0)} GFLOP. ` +
      'Kernel rates on 1 thread here (the Python child, best of 5): ' +
      `oneDNN's 3x3 convolution (192 channels, 64x64, batch 4) ${fmt(flops.conv3x3Gflops, 0)} GFLOP/s; a 2048x2048 float32 matmul (MKL's sgemm) ${fmt(flops.peakGflops, 0)} GFLOP/s; ` +
      `a 1x1 convolution as PyTorch runs it (576 to 1728 channels over 256 positions, the 16x16 attention's qkv: on one thread at batch < 16 PyTorch sends it to that sgemm) ${fmt(flops.conv1x1Gflops, 0)} GFLOP/s, ` +
      `the same through oneDNN (torch.mkldnn_convolution) ${fmt(flops.conv1x1OnednnGflops, 0)} GFLOP/s. ` +
      `At the 3x3 convolution's rate a step would take ${fmt(gflop / flops.conv3x3Gflops, 2)} s of CPU; ours takes ${fmt(oursCpu, 2)} s (${fmt(oursCpu / (gflop / flops.conv3x3Gflops), 2)}x that), theirs ${fmt(theirsCpu, 2)} s. ` +
      "The profile below shows where the rest goes: both sides' 1x1 convolutions at sgemm's rate (_slow_conv2d), the classifier's backward, memory-bound GroupNorm, SiLU and copies, and on their side attention's bmm and softmax over 1,024 tokens of 64 channels, where ours runs the fused attention kernel.");
  }
  if (profile) {
    lines.push('', `## One guided step op by op (${profileRow.net}, batch ${profileRow.batch}, ${profileRow.threads} thread(s), torch.profiler in one Python process)`, '',
      'Both sides\' graphs run in the same process: theirs eager, ours as the TorchScript files our addon runs (loaded with torch.jit.load), same weights and inputs. Self CPU ms of the top ops. The totals are not the step times above (the cost of profiling each op, more of it on the eager side with its more numerous ops, and both sides in one process): compare the shares.', '');
    for (const side of profile.sides) {
      lines.push(`### ${side.side}: ${fmt(side.totalMs, 0)} ms in all`, '', table(['op', 'self ms', 'calls', 'share'], side.ops.slice(0, 12).map((o) => [o.op, fmt(o.selfMs, 1), o.calls, `${fmt((100 * o.selfMs) / side.totalMs, 1)}%`])), '');
    }
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-openai-bench-'));
  const log = (s: string): void => console.error(s);
  try {
    const rows = args.quick ? ROWS.slice(0, 1) : ROWS;
    const measured: Measured[] = [];
    for (const net of [...new Set(rows.map((r) => r.net))]) {
      const spec = specFor(args, rows.find((r) => r.net === net)!, dir);
      await python('prepare', spec);
      for (const row of rows.filter((r) => r.net === net)) measured.push(await measure(args, row, dir, log));
    }
    const profileRow = rows[0];
    const spec = specFor(args, profileRow, dir);
    await ours('save', spec);
    const profile = (await python('profile', spec)).result as OpenAIProfile;
    const text = report(args, measured, profile, profileRow);
    fs.writeFileSync(args.out, text);
    console.log(text);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
