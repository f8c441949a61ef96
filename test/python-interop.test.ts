// Checkpoints cross between Python and us: save() -> Python torch.jit.load gives the same
// output; a classifier scripted in Python gives the same gradient here as in Python.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, loadSafetensors, saveSafetensors, torch, Unet } from '../lib';
import { assertClose, f32Tol, readF32, REFERENCE, referenceCase, testPython } from './helpers';

const SCRIPT = path.resolve(__dirname, '..', '..', 'scripts', 'fixtures', 'check_saved_unet.py');
const rc = referenceCase();

describe('Python interop', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-interop-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('save() of a native Unet runs in Python torch.jit.load with the same output', function () {
    const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 }).eval();
    unet.loadStateDict(path.join(REFERENCE, 'unet.safetensors'));
    const modelPath = path.join(tmp, 'unet.pt');
    unet.save(modelPath);
    const outPath = path.join(tmp, 'out.f32');
    const r = spawnSync(testPython(), [SCRIPT, modelPath, path.join(REFERENCE, 'forward_x.f32'), '2,3,16,16', rc.forward_t.join(','), outPath], {
      encoding: 'utf8',
    });
    assert.strictEqual(r.status, 0, r.stderr);
    const x = torch.tensor(readF32(path.join(REFERENCE, 'forward_x.f32')), { shape: [2, 3, 16, 16] });
    const ours = torch.noGrad(() => unet.forward(x, torch.tensor(rc.forward_t)));
    assertClose(readF32(outPath), ours.toFloat32Array(), 1.2e-5, 'python vs ours'); // measured 1.2e-6
    assertClose(readF32(outPath), readF32(path.join(REFERENCE, 'forward_out.f32')), 1.3e-5, 'python vs reference'); // measured 1.3e-6
    // And it loads back here as a checkpoint.
    const again = jit.load(modelPath);
    assertClose(torch.noGrad(() => again.forward(x, torch.tensor(rc.forward_t))).toFloat32Array(), ours.toFloat32Array(), 0, 'reloaded');
  });

  it('a classifier scripted in Python (classifier.pt) gives the Python gradient', () => {
    const classifier = jit.load(path.join(REFERENCE, 'classifier.pt'));
    const x = torch.tensor(readF32(path.join(REFERENCE, 'forward_x.f32')), { shape: [2, 3, 16, 16] });
    const g = classifierCondFn(x, torch.tensor(rc.forward_t), { classifier, y: torch.tensor(rc.y), classifierScale: rc.classifier_scale });
    assertClose(g.toFloat32Array(), readF32(path.join(REFERENCE, 'cond_grad.f32')), f32Tol(readF32(path.join(REFERENCE, 'cond_grad.f32'))), 'gradient'); // measured 0
  });

  it('the Python export example writes checkpoints that sample here with guidance', async () => {
    const script = path.resolve(__dirname, '..', '..', 'scripts', 'export_for_guided_diffusion.py');
    const out = path.join(tmp, 'exported');
    const r = spawnSync(testPython(), [script, out], { encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stderr);
    const model = jit.load(path.join(out, 'unet.pt'));
    const classifier = jit.load(path.join(out, 'classifier.pt'));
    assert.strictEqual(classifier.attribute('num_classes'), 10);
    const diffusion = new GaussianDiffusion(model, { imageSize: 16, timesteps: 50, samplingTimesteps: 5 });
    const img = await diffusion.sample({ batchSize: 2, seed: 1, condFn: classifierGuidance, guidanceKwargs: { classifier, y: torch.tensor([1, 9]), classifierScale: 2 } });
    assert.deepStrictEqual(img.shape, [2, 3, 16, 16]);
  });

  it('safetensors round trip keeps names, dtypes and values', () => {
    const file = path.join(tmp, 'w.safetensors');
    const tensors = {
      a: torch.randn([3, 4]),
      b: torch.tensor([1, 2, 3]),
      c: torch.tensor([0.5, -1.25], { dtype: 'float16' }),
      d: torch.tensor([1.5, 2], { dtype: 'bfloat16' }),
      e: torch.tensor([true, false]),
    };
    saveSafetensors(tensors, file);
    const back = loadSafetensors(file);
    assert.deepStrictEqual(Object.keys(back).sort(), ['a', 'b', 'c', 'd', 'e']);
    for (const [k, t] of Object.entries(tensors)) {
      assert.strictEqual(back[k].dtype, t.dtype, k);
      assert.deepStrictEqual(back[k].toArray(), t.toArray(), k);
    }
    const r = spawnSync(testPython(), ['-c', `from safetensors.torch import load_file; d = load_file(${JSON.stringify(file)}); print(d['c'].tolist(), d['b'].dtype)`], { encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stderr);
    assert.strictEqual(r.stdout.trim(), '[0.5, -1.25] torch.int64');
  });
});
