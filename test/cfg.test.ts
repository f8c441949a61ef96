// Classifier-free guidance (issue 22 §2): sample({ cfgScale, rescaledPhi, modelKwargs: { y } })
// against lucidrains' own classifier_free_guidance.py (test/fixtures/lucidrains-cfg, made by
// scripts/fixtures/lucidrains_cfg.py: THEIR GaussianDiffusion.sample and forward_with_cond_scale
// on THEIR Unet with seeded random weights; our sampler runs that Unet traced, with label
// num_classes as their null_classes_emb), then the openai-style null label (an extra index of
// openai's UNetModel) against the formula worked out here, every sampler, condFn, bad inputs.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { classifierGuidance, GaussianDiffusion, jit, openai, SampleOptions, sampleDistributed, SAMPLERS, Tensor, torch } from '../lib';
import { FIXTURES, maxAbsDiff, printMeasured, readF32, REFERENCE } from './helpers';

interface Slot { offset: number; shape: number[] }
interface Case {
  name: string;
  options: { timesteps: number; sampling_timesteps?: number; objective: 'pred_noise' | 'pred_x0' | 'pred_v'; beta_schedule: 'linear' | 'cosine'; ddim_sampling_eta?: number };
  cond_scale: number;
  rescaled_phi: number;
  seed: number;
  sample: Slot;
  sample_batched: Slot;
  batched_vs_theirs: number;
}
const DIR = path.join(FIXTURES, 'lucidrains-cfg');
const meta = JSON.parse(fs.readFileSync(path.join(DIR, 'cfg.json'), 'utf8')) as { reference: { commit: string; repository: string }; torch: string; classes: number[]; cases: Case[] };
const data = readF32(path.join(DIR, 'cfg.f32'));

// Their sample calls the Unet on the batch twice, ours once on both halves: LibTorch's CPU
// kernels round a batch of 4 and two of 2 differently (1e-7), which the steps carry (up to 1.6e-4
// where DDIM's first step divides by sqrt(ab_T) of a short linear schedule). The fixture holds
// their sampler also with the mix over one batched forward (sample_batched), and how far that is
// from theirs (batched_vs_theirs): ours must equal the batched one within float32 rounding, and be
// as close to theirs as it is (plus 1e-6). Measured: 0 against the batched one, and exactly the
// batched one's distance against theirs.
const BOUND_BATCHED = 1e-6;
const slot = (s: Slot): Float32Array => data.subarray(s.offset, s.offset + s.shape.reduce((a, b) => a * b, 1));

describe(`classifier-free guidance: lucidrains' classifier_free_guidance.py (${meta.reference.commit.slice(0, 7)}, torch ${meta.torch})`, () => {
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => torch.setNumThreads(threads));

  const model = () => jit.load(path.join(DIR, 'unet_cfg.pt')).eval();
  const diffusionOf = (c: Case): GaussianDiffusion =>
    new GaussianDiffusion(model(), {
      imageSize: 16, channels: 3, timesteps: c.options.timesteps, samplingTimesteps: c.options.sampling_timesteps ?? c.options.timesteps,
      objective: c.options.objective, betaSchedule: c.options.beta_schedule, ddimSamplingEta: c.options.ddim_sampling_eta ?? 0,
    });

  it('the fixture records their commit, and the model its null class', () => {
    assert.match(meta.reference.repository, /lucidrains\/denoising-diffusion-pytorch$/);
    assert.match(meta.reference.commit, /^[0-9a-f]{40}$/);
    const m = model();
    assert.strictEqual(m.attribute('null_class'), 3);
    assert.ok(meta.cases.some((c) => c.options.sampling_timesteps === undefined) && meta.cases.some((c) => c.rescaled_phi > 0));
  });

  for (const c of meta.cases) {
    it(`${c.name}: their sample`, async () => {
      const d = diffusionOf(c);
      torch.manualSeed(c.seed);
      const img = await d.sample({ batchSize: 2, cfgScale: c.cond_scale, rescaledPhi: c.rescaled_phi, modelKwargs: { y: torch.tensor(meta.classes, { dtype: 'int64' }) } });
      const ours = img.toFloat32Array();
      const theirs = slot(c.sample);
      const batched = maxAbsDiff(ours, slot(c.sample_batched));
      printMeasured(`${c.name}: vs their sampler over one batched forward: max |difference|`, batched, BOUND_BATCHED);
      assert.ok(batched <= BOUND_BATCHED, `${batched}`);
      const diff = maxAbsDiff(ours, theirs);
      const bound = c.batched_vs_theirs + 1e-6;
      printMeasured(`${c.name}: vs their sample: max |difference|`, diff, bound);
      assert.ok(diff <= bound, `${diff}`);
      // Not vacuous: the conditional model alone (scale 1) is far from it.
      if (c.cond_scale !== 1) {
        torch.manualSeed(c.seed);
        const plain = await d.sample({ batchSize: 2, modelKwargs: { y: torch.tensor(meta.classes, { dtype: 'int64' }) } });
        assert.ok(maxAbsDiff(plain.toFloat32Array(), theirs) > 100 * bound);
        plain.dispose();
      }
      img.dispose();
    });
  }
});

// openai's nets start with zero output convolutions (their zero_module): every output 0.
function randomize(net: { namedParameters(): Record<string, Tensor> }): void {
  const p = net.namedParameters();
  torch.noGrad(() => {
    for (const t of Object.values(p)) t.copy_(torch.tidy(() => torch.randn(t.shape).mul(0.2)));
  });
  torch.dispose(Object.values(p));
}

describe('classifier-free guidance: openai\'s extra label index, every sampler, condFn, errors', () => {
  // openai's UNetModel with num_classes + 1 = 4 labels: 3 classes and the null class 3.
  let unet: openai.UNetModel;
  let d: GaussianDiffusion;
  const y = torch.tensor([0, 2], { dtype: 'int64' });
  before(() => {
    torch.manualSeed(7);
    unet = new openai.UNetModel({ imageSize: 8, inChannels: 1, modelChannels: 32, outChannels: 1, numResBlocks: 1, attentionResolutions: [], numClasses: 4 });
    randomize(unet);
    unet.eval();
    d = new GaussianDiffusion(unet, { imageSize: 8, channels: 1, timesteps: 30, betaSchedule: 'linear' });
  });

  it('one DDIM step: x0 from eps = uncond + s (cond - uncond), rescaled as lucidrains\' rescaled_phi, worked out here', async () => {
    const one = new GaussianDiffusion(unet, { imageSize: 8, channels: 1, timesteps: 30, samplingTimesteps: 1, betaSchedule: 'linear', clipDenoised: false, autoNormalize: false });
    for (const [s, phi] of [[3, 0], [2, 0.7], [0, 0], [-1, 0.3]]) {
      const all = await one.sample({ batchSize: 2, seed: 1, cfgScale: s, rescaledPhi: phi, nullClass: 3, modelKwargs: { y }, returnAllTimesteps: true });
      const xT = all.narrow(1, 0, 1).squeeze(1);
      const got = all.narrow(1, 1, 1).squeeze(1);
      const expected = torch.tidy(() => {
        const t = torch.full([2], 29, { dtype: 'int64' });
        const cond = unet.forward(xT, t, y);
        const uncond = unet.forward(xT, t, torch.tensor([3, 3], { dtype: 'int64' }));
        let eps = uncond.add(cond.sub(uncond).mul(s));
        if (phi > 0) {
          // std per image over C, H, W, unbiased.
          const std = (v: Tensor): Tensor => {
            const flat = v.reshape([2, -1]);
            const mean = flat.mean(1, true);
            return flat.sub(mean).square().sum(1, true).div(flat.shape[1] - 1).sqrt().reshape([2, 1, 1, 1]);
          };
          eps = eps.mul(std(cond).div(std(eps))).mul(phi).add(eps.mul(1 - phi));
        }
        return eps;
      });
      // x0 = (x_T - sqrt(1 - ab) eps) / sqrt(ab): compared as the eps it implies (1 / sqrt(ab_T)
      // would magnify the rounding of a batch of 4 against two of 2).
      const ab = torch.tidy(() => one.schedule().alphasCumprod.narrow(0, 29, 1).item() as number);
      const implied = torch.tidy(() => xT.sub(got.mul(Math.sqrt(ab))).div(Math.sqrt(1 - ab)));
      const diff = maxAbsDiff(implied.toFloat32Array(), expected.toFloat32Array());
      printMeasured(`s ${s}, phi ${phi}: eps max |difference|`, diff, 1e-5);
      assert.ok(diff <= 1e-5, `${diff}`);
      implied.dispose();
      torch.dispose([all, xT, got, expected]);
    }
  });

  for (const sampler of SAMPLERS) {
    it(`${sampler}: cfgScale 1 is the conditional model; 0 the unconditional one; 3 neither`, async () => {
      const o: SampleOptions = { batchSize: 2, seed: 2, sampler, ...(sampler === 'ancestral' || sampler === 'ddim' ? {} : { steps: 5 }) };
      const cond = await d.sample({ ...o, modelKwargs: { y } });
      const one = await d.sample({ ...o, modelKwargs: { y }, cfgScale: 1, nullClass: 3 });
      assert.strictEqual(maxAbsDiff(cond.toFloat32Array(), one.toFloat32Array()), 0);
      const uncond = await d.sample({ ...o, modelKwargs: { y: torch.tensor([3, 3], { dtype: 'int64' }) } });
      const zero = await d.sample({ ...o, modelKwargs: { y }, cfgScale: 0, nullClass: 3 });
      // Equal up to rounding (a batch of 4 against one of 2; cond + (cond - uncond) * -1), relative
      // to the samples' size (the unclamped fast samplers of a random net reach thousands), which
      // the first step's x0 = (x - sqrt(1 - ab_T) eps) / sqrt(ab_T) magnifies (6e-5 for DDIM).
      const u = uncond.toFloat32Array();
      const dz = maxAbsDiff(u, zero.toFloat32Array()) / Math.max(1, ...Array.from(u, Math.abs));
      assert.ok(dz < 5e-4, `${dz}`);
      const three = await d.sample({ ...o, modelKwargs: { y }, cfgScale: 3, nullClass: 3 });
      assert.ok(maxAbsDiff(three.toFloat32Array(), cond.toFloat32Array()) > 1e-3);
      assert.ok(maxAbsDiff(three.toFloat32Array(), uncond.toFloat32Array()) > 1e-3);
      torch.dispose([cond, one, uncond, zero, three]);
    });
  }

  it('combines with a condFn (the JS one and the native classifier guidance): a zero gradient changes nothing, a classifier does', async () => {
    const o: SampleOptions = { batchSize: 2, seed: 3, modelKwargs: { y }, cfgScale: 2, nullClass: 3 };
    const plain = await d.sample(o);
    let calls = 0;
    const zero = await d.sample({ ...o, condFn: (x: Tensor) => { calls++; return torch.zerosLike(x); } });
    assert.strictEqual(calls, 30);
    assert.strictEqual(maxAbsDiff(plain.toFloat32Array(), zero.toFloat32Array()), 0);
    torch.manualSeed(1);
    const classifier = new openai.EncoderUNetModel({ imageSize: 8, inChannels: 1, modelChannels: 32, outChannels: 3, numResBlocks: 1, attentionResolutions: [], pool: 'adaptive' });
    randomize(classifier);
    classifier.eval();
    const guided = await d.sample({ ...o, condFn: classifierGuidance, guidanceKwargs: { classifier, y, classifierScale: 50 } });
    assert.ok(maxAbsDiff(plain.toFloat32Array(), guided.toFloat32Array()) > 1e-3);
    torch.dispose([plain, zero, guided]);
  });

  it('sampleDistributed splits modelKwargs.y with its images', async () => {
    const y4 = torch.tensor([0, 2, 1, 0], { dtype: 'int64' });
    const d5 = new GaussianDiffusion(unet, { imageSize: 8, channels: 1, timesteps: 30, samplingTimesteps: 5, betaSchedule: 'linear' });
    // Unsplit, a chunk of 1 would get 4 labels: an error.
    const whole = await d5.sample({ batchSize: 4, seeds: [5, 6, 7, 8], sampler: 'ddim', modelKwargs: { y: y4 }, cfgScale: 2, nullClass: 3 });
    const split = await sampleDistributed(d5, { batchSize: 4, seed: 5, chunkSize: 1, sampler: 'ddim', modelKwargs: { y: y4 }, cfgScale: 2, nullClass: 3 });
    // Batches of 1 against one of 4: rounding only.
    const diff = maxAbsDiff(whole.toFloat32Array(), split.toFloat32Array());
    assert.ok(diff < 1e-3, `${diff}`);
    torch.dispose([y4, whole, split]);
  });

  it('bad inputs are clear errors', async () => {
    const rejects = (o: SampleOptions, re: RegExp): Promise<void> => assert.rejects(d.sample({ batchSize: 2, ...o }), re);
    await rejects({ cfgScale: 2, nullClass: 3 }, /cfgScale needs the class labels: modelKwargs: \{ y \}/);
    await rejects({ cfgScale: 2, modelKwargs: { y } }, /give nullClass \(for openai's UNetModel trained with num_classes \+ 1 labels/);
    await rejects({ cfgScale: 2, nullClass: 4, modelKwargs: { y } }, /nullClass 4 is outside the model's labels 0\.\.3/);
    await rejects({ cfgScale: 2, nullClass: -1, modelKwargs: { y } }, /nullClass must be a non-negative integer/);
    await rejects({ cfgScale: NaN, nullClass: 3, modelKwargs: { y } }, /cfgScale must be a finite number/);
    await rejects({ cfgScale: 2, nullClass: 3, rescaledPhi: 1.5, modelKwargs: { y } }, /rescaledPhi must be a number in \[0, 1\]/);
    await rejects({ rescaledPhi: 0.5, modelKwargs: { y } }, /rescaledPhi needs cfgScale/);
    await rejects({ nullClass: 3, modelKwargs: { y } }, /nullClass needs cfgScale/);
    const uncond = new GaussianDiffusion(jit.load(path.join(REFERENCE, 'unet_traced.pt')), { imageSize: 16, timesteps: 5 });
    await assert.rejects(uncond.sample({ batchSize: 2, cfgScale: 2, nullClass: 0, modelKwargs: { y } }), /takes no class labels y/);
  });
});
