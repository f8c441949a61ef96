// Editing real images (issue 22 §3): SDEdit's img2img (init, strength) and RePaint's inpainting
// (init, mask, jumpLength, jumpCount) on every sampler; RePaint's time schedule against THEIR
// get_schedule_jump (test/fixtures/repaint, made by scripts/fixtures/repaint_schedule.py from
// github.com/andreas128/RePaint at the commit it records); the bad inputs; loadImage and the CLI.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import { GaussianDiffusion, loadImage, repaintSchedule, SampleOptions, sampleDistributed, SAMPLERS, Tensor, torch, Unet } from '../lib';
import { FIXTURES, printMeasured, REFERENCE } from './helpers';

interface Case { t_T: number; jump_length: number; jump_n_sample: number; times: number[] }
const repaint = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'repaint', 'schedules.json'), 'utf8')) as {
  reference: { repository: string; commit: string }; cases: Case[];
};

const T = 20;
const FAST_STEPS = 10;
const fast = (s: string): boolean => s !== 'ancestral' && s !== 'ddim';

function model(): GaussianDiffusion {
  torch.manualSeed(0);
  const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 1 }).eval();
  return new GaussianDiffusion(unet, { imageSize: 8, timesteps: T, samplingTimesteps: T });
}

const maxAbs = (a: Tensor, b: Tensor, weight?: Tensor): number =>
  torch.tidy(() => (weight ? a.sub(b).abs().mul(weight) : a.sub(b).abs()).amax().item() as number);

describe('editing: img2img (SDEdit) and inpainting (RePaint)', () => {
  let d: GaussianDiffusion;
  let init: Tensor;
  let left: Tensor; // 1 on the left half: kept
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
    d = model();
    torch.manualSeed(5);
    init = torch.rand([2, 1, 8, 8]);
    left = torch.tensor(Array.from({ length: 64 }, (_, i) => (i % 8 < 4 ? 1 : 0)), { shape: [8, 8] }).to('float32');
  });
  after(() => torch.setNumThreads(threads));

  const options = (sampler: string): SampleOptions => ({ batchSize: 2, seed: 3, sampler: sampler as SampleOptions['sampler'], ...(fast(sampler) ? { steps: FAST_STEPS } : {}) });

  it(`RePaint's schedule is theirs (get_schedule_jump of ${repaint.reference.commit.slice(0, 7)}) for ${repaint.cases.length} cases`, () => {
    assert.match(repaint.reference.repository, /andreas128\/RePaint$/);
    assert.match(repaint.reference.commit, /^[0-9a-f]{40}$/);
    for (const c of repaint.cases) {
      assert.deepStrictEqual(repaintSchedule(c.t_T, c.jump_length, c.jump_n_sample), c.times, `t_T ${c.t_T}, jump_length ${c.jump_length}, jump_n_sample ${c.jump_n_sample}`);
    }
    // Not vacuous: their paper configuration jumps (250 steps, 10 back, 10 times: 2,521 down-steps).
    const paper = repaint.cases.find((c) => c.t_T === 250 && c.jump_length === 10 && c.jump_n_sample === 10)!;
    const downs = paper.times.filter((t, i) => i > 0 && t < paper.times[i - 1]).length;
    assert.ok(downs > 2000, `${downs}`);
  });

  for (const sampler of SAMPLERS) {
    describe(sampler, () => {
      it('strength 1 is ordinary sampling with the same seed; strength 0 returns init', async () => {
        const plain = await d.sample(options(sampler));
        const one = await d.sample({ ...options(sampler), init, strength: 1 });
        assert.strictEqual(maxAbs(plain, one), 0);
        const zero = await d.sample({ ...options(sampler), init, strength: 0 });
        assert.strictEqual(maxAbs(zero, init), 0);
        torch.dispose([plain, one, zero]);
      });

      it('strength s runs floor(steps * s) steps, from init noised to the first of them', async () => {
        const n = fast(sampler) ? FAST_STEPS : T;
        const totals: number[] = [];
        const half = await d.sample({ ...options(sampler), init, strength: 0.55, returnAllTimesteps: true, onProgress: (p) => totals.push(p.total) });
        const steps = Math.floor(n * 0.55);
        assert.strictEqual(totals[0], steps);
        assert.strictEqual(half.shape[1], steps + 1);
        const plain = await d.sample({ ...options(sampler), returnAllTimesteps: true });
        // The start: init noised with the draw that ordinary sampling starts from.
        if (sampler === 'ancestral' || sampler === 'ddim') {
          const z = plain.narrow(1, 0, 1).squeeze(1).mul(2).sub(1);
          // DDIM over all T steps: its times are 0 .. T - 1, as the ancestral sampler's.
          const t = steps - 1;
          const start = d.qSample(init.mul(2).sub(1), torch.full([2], t, { dtype: 'int64' }), z).add(1).div(2);
          assert.ok(maxAbs(half.narrow(1, 0, 1).squeeze(1), start) < 1e-6);
        }
        const last = half.narrow(1, steps, 1).squeeze(1);
        assert.ok(torch.tidy(() => last.isfinite().all().item()));
        assert.ok(maxAbs(last, plain.narrow(1, plain.shape[1] - 1, 1).squeeze(1)) > 1e-3, 'not the ordinary sample');
        torch.dispose([half, plain, last]);
      });

      it('the kept region of an inpainted sample is init within the last step\'s noise; the rest is generated', async () => {
        const out = await d.sample({ ...options(sampler), init, mask: left });
        const kept = maxAbs(out, init, left);
        const generated = maxAbs(out, init, left.neg().add(1));
        // DPM-Solver and UniPC end at t = 1/N, noise level sqrt(1 - ab_0): x = alpha x0 + sigma z there.
        const ab0 = torch.tidy(() => d.schedule().alphasCumprod.narrow(0, 0, 1).item() as number);
        const bound = sampler.startsWith('dpm-solver') || sampler === 'unipc' ? ((1 - Math.sqrt(ab0)) + 6 * Math.sqrt(1 - ab0)) / 2 : 0;
        printMeasured(`${sampler}: kept region vs init`, kept, bound);
        assert.ok(kept <= bound, `${kept} > ${bound}`);
        assert.ok(generated > 0.1, `${generated}`);
        out.dispose();
      });
    });
  }

  it('jumps (ancestral, DDIM): the progress counts the schedule\'s down-steps; the kept region stays init', async () => {
    for (const sampler of ['ancestral', 'ddim'] as const) {
      const dd = sampler === 'ddim' ? new GaussianDiffusion(d.model, { imageSize: 8, timesteps: T, samplingTimesteps: 10 }) : d;
      const n = sampler === 'ddim' ? 10 : T;
      const totals = new Set<number>();
      const out = await dd.sample({ batchSize: 2, seed: 4, sampler, init, mask: left, jumpLength: 3, jumpCount: 3, onProgress: (p) => totals.add(p.total) });
      const walk = repaintSchedule(n, 3, 3);
      const downs = walk.filter((t, i) => i > 0 && t < walk[i - 1]).length;
      assert.deepStrictEqual([...totals], [downs]);
      assert.ok(downs > n);
      assert.strictEqual(maxAbs(out, init, left), 0);
      const noJumps = await dd.sample({ batchSize: 2, seed: 4, sampler, init, mask: left });
      assert.ok(maxAbs(out, noJumps) > 1e-3, 'the jumps changed the sample');
      torch.dispose([out, noJumps]);
    }
  });

  it('img2img and inpainting combine (a mask with strength < 1), and guidance applies to the whole image', async () => {
    const shapes: number[][] = [];
    const condFn = (x: Tensor): Tensor => {
      shapes.push(x.shape);
      return torch.zerosLike(x);
    };
    const out = await d.sample({ batchSize: 2, seed: 1, sampler: 'ancestral', init, mask: left, strength: 0.5, condFn });
    assert.strictEqual(shapes.length, 10);
    assert.deepStrictEqual(shapes[0], [2, 1, 8, 8]);
    assert.strictEqual(maxAbs(out, init, left), 0);
    out.dispose();
  });

  it('one image for every sample: [C, H, W] and [1, C, H, W] as init give the same samples as the batch of it', async () => {
    const one = init.narrow(0, 0, 1);
    const both = torch.cat([one, one]);
    const a = await d.sample({ batchSize: 2, seed: 9, sampler: 'ddim', init: one.squeeze(0), strength: 0.5 });
    const b = await d.sample({ batchSize: 2, seed: 9, sampler: 'ddim', init: one, strength: 0.5 });
    const c = await d.sample({ batchSize: 2, seed: 9, sampler: 'ddim', init: both, strength: 0.5 });
    assert.strictEqual(maxAbs(a, b), 0);
    assert.strictEqual(maxAbs(a, c), 0);
    torch.dispose([one, both, a, b, c]);
  });

  it('sampleDistributed splits a per-image init with its images', async () => {
    const out = await sampleDistributed(d, { batchSize: 2, chunkSize: 1, init, strength: 0, sampler: 'ddim' });
    assert.strictEqual(maxAbs(out, init), 0);
    out.dispose();
  });

  it('bad inputs are clear errors before anything runs', async () => {
    const rejects = (o: SampleOptions, re: RegExp): Promise<void> => assert.rejects(d.sample({ batchSize: 2, ...o }), re);
    await rejects({ init: torch.rand([2, 1, 16, 16]), strength: 0.5 }, /init has shape \[2, 1, 16, 16\]; this diffusion samples \[2, 1, 8, 8\].*resize/);
    await rejects({ init: torch.rand([3, 1, 8, 8]), strength: 0.5 }, /init has shape \[3, 1, 8, 8\]/);
    await rejects({ init: torch.rand([2, 3, 8, 8]), strength: 0.5 }, /init has shape \[2, 3, 8, 8\]/);
    await rejects({ init: torch.rand([2, 1, 8, 8]).mul(2).sub(1), strength: 0.5 }, /with autoNormalize images are in \[0, 1\]/);
    await rejects({ init: torch.zeros([2, 1, 8, 8], { dtype: 'int64' }), strength: 0.5 }, /init must be a floating-point Tensor/);
    await rejects({ init, strength: 1.5 }, /strength must be in \[0, 1\]/);
    await rejects({ init, strength: -0.1 }, /strength must be in \[0, 1\]/);
    await rejects({ init, strength: NaN }, /strength must be a number/);
    await rejects({ strength: 0.5 }, /strength needs init/);
    await rejects({ mask: left }, /mask needs init/);
    await rejects({ init }, /init needs strength \(SDEdit.*\) or mask/);
    await rejects({ init, mask: torch.ones([4, 4]) }, /mask has shape \[4, 4\]; it must broadcast/);
    await rejects({ init, mask: torch.ones([3, 1, 8, 8]) }, /mask has shape \[3, 1, 8, 8\]/);
    await rejects({ init, mask: left.mul(2) }, /mask values must be in \[0, 1\]/);
    await rejects({ init, strength: 0.5, jumpLength: 2, jumpCount: 2 }, /need a mask/);
    await rejects({ init, mask: left, jumpLength: 2 }, /give jumpLength and jumpCount together/);
    await rejects({ init, mask: left, jumpLength: 0, jumpCount: 2 }, /jumpLength must be a positive integer/);
    await rejects({ init, mask: left, jumpLength: 2, jumpCount: 1.5 }, /jumpCount must be a positive integer/);
    await rejects({ init, mask: left, jumpLength: 2, jumpCount: 2, sampler: 'euler', steps: 5 }, /jumpLength is an option of 'ancestral', 'ddim'; sampler 'euler' does not take it/);
    await rejects({ jumpLength: 2, jumpCount: 2 }, /needs init/);
    await rejects({ init: 'a.png' as unknown as Tensor, strength: 0.5 }, /init: expected a Tensor/);
    assert.throws(() => repaintSchedule(0, 1, 1), /steps must be a positive integer/);
  });
});

describe('loadImage and the CLI\'s --init, --strength, --mask', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-edit-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function writePng(file: string, w: number, h: number, colorType: 0 | 2, pixel: (x: number, y: number) => [number, number, number]): void {
    const png = new PNG({ width: w, height: h });
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const [r, g, b] = pixel(x, y);
        png.data.set([r, g, b, 255], 4 * (y * w + x));
      }
    }
    fs.writeFileSync(file, PNG.sync.write(png, { colorType }));
  }

  it('reads grayscale and RGB PNGs into [1, C, H, W] in [0, 1], converts channels, resizes antialiased', () => {
    const gray = path.join(tmp, 'gray.png');
    const rgb = path.join(tmp, 'rgb.png');
    writePng(gray, 4, 2, 0, (x) => [x * 60, x * 60, x * 60]);
    writePng(rgb, 4, 2, 2, (x, y) => [255, y * 255, 0]);
    const g = loadImage(gray);
    assert.deepStrictEqual(g.shape, [1, 1, 2, 4]);
    assert.deepStrictEqual(Array.from(g.toFloat32Array()).map((v) => Math.round(v * 255)), [0, 60, 120, 180, 0, 60, 120, 180]);
    const c = loadImage(rgb);
    assert.deepStrictEqual(c.shape, [1, 3, 2, 4]);
    const l = loadImage(rgb, { channels: 1 }).toFloat32Array();
    assert.ok(Math.abs(l[0] - 0.299) < 1e-6 && Math.abs(l[4] - (0.299 + 0.587)) < 1e-6);
    assert.deepStrictEqual(loadImage(gray, { channels: 3 }).shape, [1, 3, 2, 4]);
    // Halving a 0/255 checkerboard averages it (antialiased: 0.49..0.51 at the borders), where plain
    // bilinear would pick pixels (0 or 1).
    const board = path.join(tmp, 'board.png');
    writePng(board, 8, 8, 0, (x, y) => ((x + y) % 2 ? [255, 255, 255] : [0, 0, 0]));
    const half = loadImage(board, { size: 4 }).toFloat32Array();
    assert.ok(half.every((v) => Math.abs(v - 0.5) < 0.02), Array.from(half).join(','));
    assert.throws(() => loadImage(path.join(REFERENCE, 'case.json')), /is not a PNG file/);
    assert.throws(() => loadImage(gray, { channels: 2 as 1 }), /channels must be 1 or 3/);
  });

  const CLI = path.resolve(__dirname, '..', 'lib', 'cli.js');
  const MODEL = ['--model', path.join(REFERENCE, 'unet_traced.pt'), '--image-size', '16', '--timesteps', '20'];
  const cli = (...args: string[]): { status: number | null; stderr: string } => {
    const r = spawnSync(process.execPath, [CLI, 'sample', ...args], { encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  };

  it('--init with --strength or --mask writes the edit; --strength 0 writes the (resized) image; bad combinations are one line', () => {
    const init = path.join(tmp, 'in.png');
    const mask = path.join(tmp, 'mask.png');
    // 32x32 RGB in, a 16x16 3-channel model: resized.
    writePng(init, 32, 32, 2, (x, y) => [x * 8, y * 8, 128]);
    writePng(mask, 16, 16, 0, (x) => (x < 8 ? [255, 255, 255] : [0, 0, 0]));
    const out = path.join(tmp, 'out.png');
    let r = cli(...MODEL, '--init', init, '--strength', '0', '--n', '1', '--nrow', '1', '--out', out);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /img2img of in\.png at strength 0/);
    const same = PNG.sync.read(fs.readFileSync(out));
    const expected = loadImage(init, { size: 16 }).toFloat32Array();
    // The grid's image at (2, 2): the resized input itself (to 8 bits).
    let worst = 0;
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
      const i = 4 * ((y + 2) * same.width + x + 2);
      for (let ch = 0; ch < 3; ch++) worst = Math.max(worst, Math.abs(same.data[i + ch] / 255 - expected[ch * 256 + y * 16 + x]));
    }
    assert.ok(worst <= 1 / 255, `${worst}`);
    r = cli(...MODEL, '--init', init, '--strength', '0.5', '--n', '2', '--seed', '1', '--out', out);
    assert.strictEqual(r.status, 0, r.stderr);
    r = cli(...MODEL, '--init', init, '--mask', mask, '--sampler', 'ancestral', '--jump-length', '3', '--jump-count', '2', '--n', '2', '--seed', '1', '--out', out);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /inpainting of in\.png \(jumps of 3, 2 times\)/);
    const fails = (re: RegExp, ...args: string[]): void => {
      const f = cli(...MODEL, '--out', out, ...args);
      assert.strictEqual(f.status, 1, f.stderr);
      assert.match(f.stderr, re);
    };
    fails(/--mask needs --init/, '--mask', mask);
    fails(/--strength needs --init/, '--strength', '0.5');
    fails(/--init needs --strength \(img2img\) or --mask \(inpainting\)/, '--init', init);
    fails(/--strength must be in \[0, 1\]/, '--init', init, '--strength', '2');
    fails(/--jump-length and --jump-count \(RePaint's resampling\) need --mask/, '--init', init, '--strength', '0.5', '--jump-length', '2', '--jump-count', '2');
    fails(/apply to --sampler ancestral or ddim, not unipc/, '--init', init, '--mask', mask, '--sampler', 'unipc', '--steps', '5', '--jump-length', '2', '--jump-count', '2');
    fails(/--init image not found/, '--init', path.join(tmp, 'nope.png'), '--strength', '0.5');
    fails(/is not a PNG file/, '--init', path.join(REFERENCE, 'case.json'), '--strength', '0.5');
  });
});
