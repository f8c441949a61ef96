// use_fp16 on the CPU (issue 19 §3): their README's 64x64 MODEL_FLAGS with --use_fp16 True,
// built as a CPU user gets it now (float32 convolutions, createModel's default on the CPU)
// and as before (float16 convolutions, what createModel builds for CUDA), on this machine.
// Times the start-up (build + the diffusion's probe forward) and one guided-free DDIM step at
// batch 1. `--channels N` shrinks num_channels (the float16 side at 192 takes minutes);
// `--skip-fp16` times only the float32 side. Writes nothing: prints a Markdown table.
import { GaussianDiffusion, openai, torch } from '../lib';
import { sourceCommit } from './common';

const FLAGS = '--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 64 --learn_sigma True ' +
  '--noise_schedule cosine --num_head_channels 64 --num_res_blocks 3 --resblock_updown True --use_new_attention_order True ' +
  '--use_fp16 True --use_scale_shift_norm True --timestep_respacing ddim2';

async function side(channels: number, device: 'cpu' | 'cuda'): Promise<{ startS: number; stepS: number; convDtype: string }> {
  const flags = { ...openai.parseFlags(FLAGS), num_channels: channels };
  const t0 = performance.now();
  // device: the target createModel builds for; the weights stay on the CPU either way.
  const model = openai.createModel(flags, { device }).eval();
  const diffusion: GaussianDiffusion = openai.createGaussianDiffusion(model, flags, { device: 'cpu' });
  const startS = (performance.now() - t0) / 1000;
  const p = model.namedParameters();
  const convDtype = p['input_blocks.1.0.in_layers.2.weight'].dtype;
  torch.dispose(Object.values(p));
  const y = torch.tensor([1]);
  const t1 = performance.now();
  const x = await diffusion.sample({ batchSize: 1, seed: 1, sampler: 'ddim', modelKwargs: { y } } as never);
  const stepS = (performance.now() - t1) / 1000 / 2;
  torch.dispose([x, y]);
  model.dispose();
  return { startS, stepS, convDtype };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf('--channels');
  const channels = at >= 0 ? Number(args[at + 1]) : 192;
  torch.setNumThreads(Number(process.env.GD_THREADS ?? 2));
  const rows: string[] = [];
  const cpu = await side(channels, 'cpu');
  rows.push(`| CPU default (float32 convs) | ${cpu.convDtype} | ${cpu.startS.toFixed(2)} | ${cpu.stepS.toFixed(2)} |`);
  if (!args.includes('--skip-fp16')) {
    const half = await side(channels, 'cuda');
    rows.push(`| before: float16 convs on the CPU | ${half.convDtype} | ${half.startS.toFixed(2)} | ${half.stepS.toFixed(2)} |`);
    rows.push(`\nfloat16 / float32: start-up ${(half.startS / cpu.startS).toFixed(1)}x, step ${(half.stepS / cpu.stepS).toFixed(1)}x`);
  }
  console.log(`64x64 MODEL_FLAGS --use_fp16 True, num_channels ${channels}, batch 1, ${torch.getNumThreads()} threads, at ${sourceCommit()}\n`);
  console.log('| build | conv dtype | start-up s (build + probe) | s per DDIM step |\n|---|---|---|---|');
  console.log(rows.join('\n'));
}

main().catch((e) => { console.error(e); process.exit(1); });
