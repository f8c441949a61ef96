// openai's full-size 64x64 ImageNet configuration on CUDA (their README's MODEL_FLAGS with
// --use_fp16 False, the 64x64 classifier; random weights, batch 16, classifier scale 1): a
// guided sample with the fast samplers against 250 respaced ancestral steps, as
// classifier_sample.py runs it. Prints a markdown table; the ratio is ancestral time / sampler time.
//   node dist/bench/cuda/fast_samplers.js   (needs a CUDA device; --smoke: tiny nets on the CPU, to check the script)
import { GaussianDiffusion, classifierGuidance, openai, SampleOptions, torch } from '../../lib';

const MODEL_FLAGS =
  '--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --dropout 0.1 --image_size 64 --learn_sigma True ' +
  '--noise_schedule cosine --num_channels 192 --num_head_channels 64 --num_res_blocks 3 --resblock_updown True ' +
  '--use_new_attention_order True --use_fp16 False --use_scale_shift_norm True';
const CLASSIFIER_FLAGS = '--image_size 64 --classifier_attention_resolutions 32,16,8 --classifier_depth 4 --classifier_width 128 --classifier_pool attention --classifier_resblock_updown True --classifier_use_scale_shift_norm True';
const SMOKE = process.argv.includes('--smoke');
const SMOKE_FLAGS = ' --num_channels 32 --num_res_blocks 1 --image_size 64 --channel_mult 1,2 --attention_resolutions 32 --classifier_width 32 --classifier_depth 1 --classifier_channel_mult 1,2 --classifier_attention_resolutions 32 --num_head_channels 32 --classifier_num_head_channels 32';
const BATCH = SMOKE ? 2 : 16;
const DEVICE = SMOKE ? 'cpu' : 'cuda';

interface Row { name: string; diffusion: GaussianDiffusion; options: SampleOptions; calls: number }

async function main(): Promise<void> {
  if (!SMOKE && !torch.cuda.isAvailable()) throw new Error('fast_samplers: no CUDA device');
  torch.manualSeed(0);
  const flags = openai.parseFlags(MODEL_FLAGS + (SMOKE ? SMOKE_FLAGS : ''));
  const model = openai.createModel(flags).to(DEVICE);
  const classifier = openai.createClassifier(openai.parseFlags(CLASSIFIER_FLAGS + (SMOKE ? SMOKE_FLAGS : ''))).to(DEVICE);
  const full = openai.createGaussianDiffusion(model, flags);
  const respaced = openai.createGaussianDiffusion(model, { ...flags, timestep_respacing: SMOKE ? '10' : '250' });
  const y = torch.randint(0, 1000, [BATCH]).to(DEVICE);
  const steps = SMOKE ? 4 : 20;
  const rows: Row[] = [
    { name: `ancestral, ${SMOKE ? 10 : 250} respaced steps (classifier_sample.py)`, diffusion: respaced, options: {}, calls: SMOKE ? 10 : 250 },
    { name: 'DDIM, 25 respaced steps (ddim25)', diffusion: openai.createGaussianDiffusion(model, { ...flags, timestep_respacing: 'ddim25', use_ddim: true }), options: { sampler: 'ddim' }, calls: 25 },
    { name: `dpm-solver++, ${steps} steps, order 2 multistep`, diffusion: full, options: { sampler: 'dpm-solver++', steps }, calls: steps },
    { name: `dpm-solver++, ${steps} steps, thresholding`, diffusion: full, options: { sampler: 'dpm-solver++', steps, thresholding: true }, calls: steps },
    { name: `unipc bh2, ${steps} steps, order 2`, diffusion: full, options: { sampler: 'unipc', steps, unipcVariant: 'bh2' }, calls: steps },
    { name: `dpmpp-2m, ${steps} Karras sigmas`, diffusion: full, options: { sampler: 'dpmpp-2m', steps }, calls: steps },
  ];
  const guided = (d: GaussianDiffusion, extra: SampleOptions): Promise<unknown> =>
    d.sample({ batchSize: BATCH, seed: 1, modelKwargs: { y }, condFn: classifierGuidance, guidanceKwargs: { classifier, y, classifierScale: 1 }, ...extra } as SampleOptions)
      .then((img) => {
        img.sum().item(); // waits for the last kernels
        img.dispose();
      });
  // Warm-up: TorchScript's profiling executor and fuser compile over the first calls.
  await guided(full, { sampler: 'dpm-solver++', steps: SMOKE ? 2 : 10 });
  const times: number[] = [];
  for (const row of rows) {
    let best = Infinity;
    for (let rep = 0; rep < 2; rep++) {
      const t0 = performance.now();
      await guided(row.diffusion, row.options);
      best = Math.min(best, performance.now() - t0);
    }
    times.push(best);
  }
  console.log(`| guided sample, batch ${BATCH}, on ${DEVICE} | model calls | s per sample (best of 2) | ms per call | ancestral time / this |`);
  console.log('| --- | ---: | ---: | ---: | ---: |');
  rows.forEach((row, i) => {
    const ms = times[i];
    console.log(`| ${row.name} | ${row.calls} | ${(ms / 1000).toFixed(2)} | ${(ms / row.calls).toFixed(1)} | ${(times[0] / ms).toFixed(1)}x |`);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
