// guided-diffusion train --openai "$MODEL_FLAGS $DIFFUSION_FLAGS $TRAIN_FLAGS" --data-dir --out-dir
// (lib/cli-train-openai.ts), on Fashion-MNIST written out as PNGs: the checkpoints the CLI
// writes are byte for byte those of the library's loadImageFolder + TrainLoop.runLoop with the
// same flags; resume_checkpoint continues at the saved step; sample --openai reads what it wrote;
// wrong flags are named.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadImageFolder, openai, torch } from '../lib';
import { assertSameFiles, assertSameStepWithCheckpointing, writeFashionMnistPngs } from './helpers';

const CLI = path.resolve(__dirname, '..', 'lib', 'cli.js');
const MODEL_FLAGS = '--image_size 32 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2 --attention_resolutions 16 --class_cond True --learn_sigma True';
const DIFFUSION_FLAGS = '--diffusion_steps 100 --noise_schedule cosine';
const TRAIN_FLAGS = '--lr 1e-3 --batch_size 8 --log_interval 2 --save_interval 2';
const ALL = `${MODEL_FLAGS} ${DIFFUSION_FLAGS} ${TRAIN_FLAGS}`;

function cli(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, OPENAI_LOGDIR: '' } });
  return { status: r.status, stderr: r.stderr };
}

describe('CLI: train --openai (their image_train.py)', () => {
  let tmp: string;
  let data: string;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-cli-train-'));
    data = path.join(tmp, 'images');
    fs.mkdirSync(data);
    await writeFashionMnistPngs(32, () => data);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('writes the checkpoints the library writes with the same flags, byte for byte; logs their keys; resumes; sample --openai reads them', async () => {
    const out = path.join(tmp, 'cli');
    const r = cli('train', '--openai', ALL, '--data-dir', data, '--out-dir', out, '--steps', '4', '--threads', '1', '--seed', '7');
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /^32 images of 32x32, 10 classes from /m);
    assert.match(r.stderr, /^step 0 \| grad_norm [\d.]+ \| loss [\d.]+ .*\| mse [\d.]+ .*\| vb [\d.]+/m);
    assert.match(r.stderr, /^trained 4 steps, to step 4; checkpoints 000000, 000002, 000004 in /m);
    const names = ['model', 'ema_0.9999_', 'opt'].flatMap((p) => ['000000', '000002', '000004'].map((n) => `${p}${n}.pt`)).sort();
    assert.deepStrictEqual(fs.readdirSync(out).sort(), names);

    // The same run through the library, on one thread as the CLI's (the sums' order is the same).
    const threads = torch.getNumThreads();
    torch.setNumThreads(1);
    const lib = path.join(tmp, 'lib');
    const flags = openai.parseFlags(ALL);
    torch.manualSeed(7);
    const { model, diffusion } = openai.createModelAndDiffusion(flags);
    const folder = await loadImageFolder(data, { imageSize: 32, classCond: true });
    const loop = new openai.TrainLoop(diffusion, { lr: 1e-3, batch_size: 8, log_interval: 2, save_interval: 2, seed: 7 });
    try {
      await loop.runLoop({ data: folder.images, labels: folder.labels, steps: 4, outDir: lib });
    } finally {
      torch.setNumThreads(threads);
    }
    assertSameFiles(out, lib, names);
    torch.dispose([folder.images, folder.labels!]);
    model.dispose();

    const resumed = cli('train', '--openai', `${ALL} --resume_checkpoint ${path.join(out, 'model000002.pt')}`, '--data-dir', data, '--out-dir', out, '--steps', '2', '--threads', '1', '--seed', '7');
    assert.strictEqual(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /^step 2 \|/m);
    assert.match(resumed.stderr, /^trained 2 steps, to step 4; /m);

    const png = path.join(tmp, 'sample.png');
    const s = cli('sample', '--openai', `${MODEL_FLAGS} ${DIFFUSION_FLAGS} --timestep_respacing 4`, '--model-path', path.join(out, 'model000004.pt'), '--n', '2', '--class', '3', '--out', png, '--threads', '1');
    assert.strictEqual(s.status, 0, s.stderr);
    assert.ok(fs.statSync(png).size > 100);
  });

  it('--use_checkpoint True says so and takes the step it takes without (logged values equal)', () => {
    const flags = `${MODEL_FLAGS} ${DIFFUSION_FLAGS} --lr 1e-3 --batch_size 8 --log_interval 1 --save_interval 100`;
    const run = (extra: string, dir: string) => cli('train', '--openai', `${flags}${extra}`, '--data-dir', data, '--out-dir', path.join(tmp, dir), '--steps', '1', '--threads', '1', '--seed', '7');
    assertSameStepWithCheckpointing(run);
  });

  it('--use_fp16 True on the CPU: says it trains in float32 (no loss scaling: no lg_loss_scale logged) and trains', () => {
    const out = path.join(tmp, 'fp16');
    const r = cli('train', '--openai', `${ALL} --use_fp16 True --fp16_scale_growth 0.01`, '--data-dir', data, '--out-dir', out, '--steps', '1', '--threads', '1', '--seed', '7');
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /--use_fp16 True: float16 convolutions and loss scaling are for CUDA; on the CPU this trains in float32/);
    assert.match(r.stderr, /^step 0 \|.* grad_norm /m);
    assert.doesNotMatch(r.stderr, /lg_loss_scale/);
    assert.ok(fs.existsSync(path.join(out, 'model000000.pt')));
    const model = openai.createModel({ ...openai.parseFlags(MODEL_FLAGS), use_fp16: false });
    try {
      model.loadStateDict(path.join(out, 'model000000.pt'));
      assert.ok(Object.values(model.namedParameters()).every((p) => p.dtype === 'float32'));
    } finally {
      model.dispose();
    }
    console.log(`      ${r.stderr.split('\n').filter((l) => /use_fp16|^step 0/.test(l)).join('\n      ')}`);
  });

  it('names what is wrong: fp16 flag values, flags not of image_train.py, no data or out dir, a part, options of the recipe, a folder without images', () => {
    const dirs = ['--data-dir', data, '--out-dir', path.join(tmp, 'x')];
    const cases: [string[], RegExp][] = [
      [['train', '--openai', `${ALL} --use_fp16 True --fp16_scale_growth -1`, ...dirs], /fp16_scale_growth must be a number >= 0; got -1/],
      [['train', '--openai', `${ALL} --fp16_scale_growth fast`, ...dirs], /fp16_scale_growth: expected a number but received fast/],
      [['train', '--openai', `${ALL} --use_fp16 maybe`, ...dirs], /use_fp16.*maybe/],
      [['train', '--openai', `${ALL} --classifier_depth 2`, ...dirs], /unknown flag --classifier_depth \(not a flag of their image_train.py\)/],
      [['train', '--openai', ALL, '--out-dir', path.join(tmp, 'x')], /train --openai needs --data-dir/],
      [['train', '--openai', ALL, '--data-dir', data], /train --openai needs --out-dir \(or OPENAI_LOGDIR/],
      [['train', 'unet', '--openai', ALL, ...dirs], /train --openai takes no part \('unet'\)/],
      [['train', '--openai', ALL, '--minutes', '3', ...dirs], /--minutes does not apply with --openai/],
      [['train', '--openai', ALL, '--data-dir', tmp + '/x-missing', '--out-dir', path.join(tmp, 'x')], /is not a folder/],
      [['train', '--data-dir', data, 'unet'], /--data-dir needs --openai/],
    ];
    for (const [args, want] of cases) {
      const r = cli(...args);
      assert.strictEqual(r.status, 1, args.join(' '));
      assert.match(r.stderr, want);
    }
  });
});
