// The numbers of the Python reference (test/fixtures/reference-case, made by lucidrains'
// denoising-diffusion-pytorch: scripts/fixtures/reference_case.py regenerates its outputs with
// their code) reproduced. Each comparison prints the max |difference| it measured.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, torch, Unet } from '../lib';
import { assertCloseReported, f32Tol, printMeasured, readF32, REFERENCE, referenceCase, testPython } from './helpers';

const rc = referenceCase();
const ref = (name: string): Float32Array => readF32(path.join(REFERENCE, `${name}.f32`));
const input = (): ReturnType<typeof torch.tensor> => torch.tensor(ref('forward_x'), { shape: rc.tensors.forward_x });

function referenceUnet(): Unet {
  const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 });
  unet.loadStateDict(path.join(REFERENCE, 'unet.safetensors'));
  return unet.eval();
}

describe('reference case', () => {
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => torch.setNumThreads(threads));

  it('native Unet with unet.safetensors matches forward_out.f32 within 1.3e-5', () => {
    const unet = referenceUnet();
    const out = torch.noGrad(() => unet.forward(input(), torch.tensor(rc.forward_t)));
    assert.deepStrictEqual(out.shape, rc.tensors.forward_out);
    assertCloseReported(out.toFloat32Array(), ref('forward_out'), 1.3e-5, 'native Unet forward vs forward_out.f32');
  });

  it('jit.load(unet_traced.pt) matches forward_out.f32 within 10 float32 ulps', () => {
    const traced = jit.load(path.join(REFERENCE, 'unet_traced.pt'));
    const out = torch.noGrad(() => traced.forward(input(), torch.tensor(rc.forward_t)));
    assertCloseReported(out.toFloat32Array(), ref('forward_out'), f32Tol(ref('forward_out')), 'traced forward vs forward_out.f32');
  });

  it('the native Unet has the reference parameter names and shapes', () => {
    const unet = referenceUnet();
    const traced = jit.load(path.join(REFERENCE, 'unet_traced.pt'));
    const ours = unet.namedParameters();
    const theirs = traced.namedParameters();
    assert.deepStrictEqual(Object.keys(ours).sort(), Object.keys(theirs).sort());
    for (const k of Object.keys(ours)) assert.deepStrictEqual(ours[k].shape, theirs[k].shape, k);
  });

  it('classifierCondFn in TypeScript reproduces cond_grad.f32 within 10 float32 ulps', () => {
    const classifier = jit.load(path.join(REFERENCE, 'classifier.pt'));
    const g = classifierCondFn(input(), torch.tensor(rc.forward_t), {
      classifier,
      y: torch.tensor(rc.y),
      classifierScale: rc.classifier_scale,
    });
    assertCloseReported(g.toFloat32Array(), ref('cond_grad'), f32Tol(ref('cond_grad')), 'classifierCondFn vs cond_grad.f32');
  });

  for (const [name, condFn] of [
    ['JS classifierCondFn', classifierCondFn],
    ['native classifierGuidance', classifierGuidance],
  ] as const) {
    it(`guided ancestral sample with ${name} reproduces ddpm_guided.f32 within 6e-6`, async () => {
      const diffusion = new GaussianDiffusion(referenceUnet(), { imageSize: 16, timesteps: 20, betaSchedule: 'sigmoid' });
      const classifier = jit.load(path.join(REFERENCE, 'classifier.pt'));
      torch.manualSeed(42);
      const img = await diffusion.sample({
        batchSize: 2,
        condFn,
        guidanceKwargs: { classifier, y: torch.tensor(rc.y), classifierScale: rc.classifier_scale },
      });
      assert.deepStrictEqual(img.shape, [2, 3, 16, 16]);
      assertCloseReported(img.toFloat32Array(), ref('ddpm_guided'), 6e-6, `native Unet, ${name}: sample vs ddpm_guided.f32`);
    });
  }

  it('the traced checkpoint samples the same as the native Unet', async () => {
    const classifier = jit.load(path.join(REFERENCE, 'classifier.pt'));
    const kwargs = { classifier, y: torch.tensor(rc.y), classifierScale: rc.classifier_scale };
    const diffusion = new GaussianDiffusion(jit.load(path.join(REFERENCE, 'unet_traced.pt')), { imageSize: 16, timesteps: 20 });
    const img = await diffusion.sample({ batchSize: 2, condFn: classifierGuidance, guidanceKwargs: kwargs, seed: 42 });
    assertCloseReported(img.toFloat32Array(), ref('ddpm_guided'), 6e-6, 'unet_traced.pt, classifierGuidance: sample vs ddpm_guided.f32');
  });
});

// Where the case comes from: provenance.json (written by scripts/fixtures/reference_case.py
// --record) says which commit of lucidrains' code and which torch regenerated its outputs, and
// how far from the committed files; the script is run again here when their repository (the
// fetch mirror, or GD_LUCIDRAINS_REPO) and einops are on the machine.
describe('reference case: its generator (scripts/fixtures/reference_case.py)', () => {
  const SCRIPT = path.resolve(__dirname, '..', '..', 'scripts', 'fixtures', 'reference_case.py');
  const REPO = process.env.GD_LUCIDRAINS_REPO ?? '/work/.mirror/lucidrains+denoising-diffusion-pytorch/repo';
  const OUTPUTS = ['forward_out', 'cond_grad', 'ddpm_guided', 'traced_forward_out'];
  interface Report { reference: { commit: string; module: string }; torch: string; vs_committed: Record<string, { max_abs_diff: number; bound: number }> }

  it('provenance.json records the reference commit and torch version, and outputs regenerated within the bounds', () => {
    const p = JSON.parse(fs.readFileSync(path.join(REFERENCE, 'provenance.json'), 'utf8')) as { origin: object; regenerated: Report };
    assert.match(p.regenerated.reference.commit, /^[0-9a-f]{40}$/);
    assert.strictEqual(p.regenerated.reference.module, 'denoising_diffusion_pytorch/guided_diffusion.py');
    assert.match(p.regenerated.torch, /^\d+\.\d+/);
    assert.deepStrictEqual(Object.keys(p.regenerated.vs_committed).sort(), [...OUTPUTS].sort());
    for (const [name, v] of Object.entries(p.regenerated.vs_committed)) {
      printMeasured(`recorded: their ${p.regenerated.reference.commit.slice(0, 7)} (torch ${p.regenerated.torch}) ${name} vs committed`, v.max_abs_diff, v.bound);
      assert.ok(v.max_abs_diff <= v.bound, name);
    }
  });

  it('run now, it regenerates the committed outputs with lucidrains\' code within its bounds', function () {
    const probe = spawnSync(testPython(), ['-c', 'import einops, safetensors, torch'], { encoding: 'utf8' });
    if (probe.status !== 0 || !fs.existsSync(REPO)) {
      console.log(`      skipped: needs python3 with einops and their repository at ${REPO} (GD_LUCIDRAINS_REPO)`);
      this.skip();
    }
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-refcase-'));
    try {
      const r = spawnSync(testPython(), [SCRIPT, '--repo', REPO, '--out', out], { encoding: 'utf8' });
      assert.strictEqual(r.status, 0, `${r.stdout}\n${r.stderr}`);
      const rep = JSON.parse(fs.readFileSync(path.join(out, 'provenance.json'), 'utf8')) as Report;
      for (const name of OUTPUTS) {
        const v = rep.vs_committed[name];
        printMeasured(`their ${rep.reference.commit.slice(0, 7)} now (torch ${rep.torch}) ${name} vs committed`, v.max_abs_diff, v.bound);
        assert.ok(v.max_abs_diff <= v.bound, name);
      }
      // The files it wrote, not only its report.
      for (const name of ['forward_out', 'cond_grad', 'ddpm_guided']) {
        assertCloseReported(readF32(path.join(out, `${name}.f32`)), ref(name), rep.vs_committed[name].bound, `regenerated ${name}.f32 vs committed`);
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
