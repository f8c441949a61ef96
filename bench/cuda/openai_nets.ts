// Issue 19 §5: the paper's networks on CUDA against openai/guided-diffusion's own code, as their
// README runs them there: use_fp16 True (their convert_to_fp16; our float16 torso), guided DDIM
// over ddim25 as classifier_sample.py, random weights drawn by their code and loaded from the
// same .pt files by both sides. Ours with CUDA graphs on (the default there) and off.
//
//   node dist/bench/cuda/openai_nets.js --repo PATH [--rounds N] [--out FILE]
//   node dist/bench/cuda/openai_nets.js --repo PATH --quick   (tiny nets on the CPU: checks the script)
//
// Each side runs in a child of its own per row: one untimed sample, then --rounds timed samples,
// each ending in a copy to the host; ms per step is the median sample's time over its steps.
// Host CPU per step is what launching the kernels costs each side. Writes
// bench/cuda/OPENAI_NETS.md (or --out).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BENCH_SRC, PYTHON, ROOT, fmt, median, runChild, sourceCommit, table } from '../common';
import { OpenaiBenchArgs as Args, parseOpenaiBenchArgs } from '../openai_args';
import type { OpenAIResult, OpenAISpec } from '../openai_spec';
import { openai } from '../../lib';

const NETS = {
  '64x64': {
    model: '--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --dropout 0.1 --image_size 64 --learn_sigma True ' +
      '--noise_schedule cosine --num_channels 192 --num_head_channels 64 --num_res_blocks 3 --resblock_updown True ' +
      '--use_new_attention_order True --use_fp16 True --use_scale_shift_norm True',
    classifier: '--image_size 64 --classifier_attention_resolutions 32,16,8 --classifier_depth 4 --classifier_width 128 ' +
      '--classifier_pool attention --classifier_resblock_updown True --classifier_use_scale_shift_norm True --classifier_use_fp16 True',
  },
  '128x128': {
    model: '--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 128 --learn_sigma True ' +
      '--noise_schedule linear --num_channels 256 --num_heads 4 --num_res_blocks 2 --resblock_updown True --use_fp16 True ' +
      '--use_scale_shift_norm True',
    classifier: '--image_size 128 --classifier_attention_resolutions 32,16,8 --classifier_depth 2 --classifier_width 128 ' +
      '--classifier_pool attention --classifier_resblock_updown True --classifier_use_scale_shift_norm True --classifier_use_fp16 True',
  },
} as const;
type NetName = keyof typeof NETS;

// --quick: reduced widths, float32 (float16 convolutions on the CPU take minutes).
const SMOKE = {
  model: ' --num_channels 32 --num_res_blocks 1 --channel_mult 1,2 --attention_resolutions 32,16 --num_head_channels 32 --use_fp16 False',
  classifier: ' --classifier_width 64 --classifier_depth 1 --classifier_attention_resolutions 32,16 --classifier_use_fp16 False',
};
const FLOAT32 = { model: ' --use_fp16 False', classifier: ' --classifier_use_fp16 False' };

interface Row {
  net: NetName;
  batch: number;
  fp16: boolean;
}

const ROWS: Row[] = [
  { net: '64x64', batch: 4, fp16: true },
  { net: '64x64', batch: 4, fp16: false },
  { net: '64x64', batch: 32, fp16: true },
  { net: '128x128', batch: 4, fp16: true },
];

function parseArgs(argv: string[]): Args {
  return parseOpenaiBenchArgs(argv, {
    out: path.join(ROOT, 'bench', 'cuda', 'OPENAI_NETS.md'),
    rounds: 3,
    usage: 'usage: openai_nets.js --repo PATH [--rounds N] [--quick] [--out FILE]',
    needs: 'guided_diffusion/unet.py',
  });
}

function specFor(args: Args, row: Row, dir: string): OpenAISpec {
  const net = NETS[row.net];
  // A later flag wins, as with their argparse.
  const extra = args.quick ? SMOKE : row.fp16 ? { model: '', classifier: '' } : FLOAT32;
  return {
    repo: path.resolve(args.repo),
    modelFlags: openai.parseFlags(net.model + extra.model) as OpenAISpec['modelFlags'],
    classifierFlags: openai.parseFlags(net.classifier + extra.classifier) as OpenAISpec['classifierFlags'],
    files: {
      model: path.join(dir, `${row.net}-model.pt`),
      classifier: path.join(dir, `${row.net}-classifier.pt`),
      oursModel: '',
      oursClassifier: '',
    },
    batch: args.quick ? 2 : row.batch,
    threads: 4,
    steps: args.quick ? 2 : 25,
    warmupSteps: 0,
    classifierScale: 1,
    seed: 7,
    autocast: null,
    device: args.quick ? 'cpu' : 'cuda',
    runs: args.rounds,
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-openai-cuda-'));
  const log = (s: string): void => console.error(s);
  const python = (mode: string, spec: OpenAISpec) =>
    runChild<OpenAIResult>(PYTHON, [path.join(BENCH_SRC, 'openai_python.py'), mode, JSON.stringify(spec)]);
  const ours = (spec: OpenAISpec) => runChild<OpenAIResult>(process.execPath, [path.join(__dirname, '..', 'openai_worker.js'), 'sample', JSON.stringify(spec)]);
  const rows = args.quick ? ROWS.slice(0, 1) : ROWS;
  const lines: (string | number)[][] = [];
  try {
    const prepared = new Set<NetName>();
    for (const row of rows) {
      const spec = specFor(args, row, dir);
      if (!prepared.has(row.net)) {
        await python('prepare', spec);
        prepared.add(row.net);
      }
      const theirs = (await python('sample', spec)).result;
      // cudaGraph is refused on the CPU (--quick): both of ours run eagerly there.
      const graph = (await ours({ ...spec, ...(args.quick ? {} : { cudaGraph: true }) })).result;
      const eager = (await ours({ ...spec, ...(args.quick ? {} : { cudaGraph: false }) })).result;
      const ms = (r: OpenAIResult): number => median(r.msPerStep);
      const name = `${row.net}, batch ${spec.batch}, ${row.fp16 && !args.quick ? 'use_fp16' : 'float32'}`;
      log(`${name}: theirs ${fmt(ms(theirs), 2)}, ours graph ${fmt(ms(graph), 2)}, ours eager ${fmt(ms(eager), 2)} ms/step`);
      lines.push([
        name,
        fmt(ms(graph), 2),
        fmt(ms(eager), 2),
        fmt(ms(theirs), 2),
        fmt(ms(theirs) / ms(graph), 2),
        fmt(ms(theirs) / ms(eager), 2),
        `${fmt(graph.cpuMsPerStep, 2)} / ${fmt(eager.cpuMsPerStep, 2)} / ${fmt(theirs.cpuMsPerStep, 2)}`,
        graph.cudaGraphs ? `${graph.cudaGraphs.captures} / ${graph.cudaGraphs.replays}` : '-',
        theirs.cudaPeakBytes ? fmt(theirs.cudaPeakBytes / 2 ** 20, 0) : '-',
      ]);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const head = ['net, batch, precision', 'ours, CUDA graphs, ms/step', 'ours, eager, ms/step', 'theirs ms/step', 'theirs/ours (graphs)', 'theirs/ours (eager)',
    'host CPU ms/step: ours graphs / eager / theirs', 'graph captures / replays (ours)', 'theirs peak CUDA MiB'];
  const text = [
    "# The paper's networks on CUDA: ours against openai/guided-diffusion's own code",
    '',
    `Generated by \`node dist/bench/cuda/openai_nets.js --repo PATH${args.quick ? ' --quick' : ''}\` (bench/cuda/lease.sh openai) at ${sourceCommit()}, ` +
      `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}).`,
    '',
    "Workload: their README's MODEL_FLAGS and CLASSIFIER_FLAGS (use_fp16 True unless the row says float32: their convert_to_fp16, our float16 torso), " +
      'random weights drawn by their code and loaded from the same .pt files by both sides, guided DDIM over ddim25 (classifier scale 1) as their classifier_sample.py. ' +
      `Per side and row a child of its own: one untimed sample, then ${args.rounds} timed, each ending in a copy to the host; ms/step: the median sample's time over its ${args.quick ? 2 : 25} steps.`,
    '',
    table(head, lines),
    '',
  ].join('\n');
  fs.writeFileSync(args.out, text);
  console.log(text);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
