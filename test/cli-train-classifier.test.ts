// guided-diffusion train-classifier --openai "$CLASSIFIER_FLAGS $TRAIN_FLAGS" --data-dir
// --val-data-dir --out-dir (lib/cli-train-classifier.ts), on Fashion-MNIST written out as PNGs:
// the checkpoints the CLI writes are byte for byte those of the library's loadImageFolder
// (randomCrop for training, center crop for val) + ClassifierTrainLoop.runLoop with the same
// flags; resume_checkpoint continues at the saved step; their README's flag string is taken
// verbatim; wrong flags are named.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadImageFolder, openai, torch } from '../lib';
import { assertSameFiles, assertSameStepWithCheckpointing, writeFashionMnistPngs } from './helpers';

const CLI = path.resolve(__dirname, '..', 'lib', 'cli.js');
// Their README's flags for the 128x128 classifier, verbatim.
const README_TRAIN = '--iterations 300000 --anneal_lr True --batch_size 256 --lr 3e-4 --save_interval 10000 --weight_decay 0.05';
const README_CLASSIFIER = '--image_size 128 --classifier_attention_resolutions 32,16,8 --classifier_depth 2 --classifier_width 128 --classifier_pool attention --classifier_resblock_updown True --classifier_use_scale_shift_norm True';
// The same flags, reduced.
const CLASSIFIER_FLAGS = '--image_size 32 --classifier_channel_mult 1,2 --classifier_attention_resolutions 16 --classifier_depth 1 --classifier_width 32 --classifier_pool attention --classifier_resblock_updown True --classifier_use_scale_shift_norm True --classifier_num_head_channels 32';
const TRAIN_FLAGS = '--iterations 4 --anneal_lr True --batch_size 8 --lr 3e-4 --save_interval 2 --weight_decay 0.05 --log_interval 1 --eval_interval 2 --diffusion_steps 100';
const ALL = `${TRAIN_FLAGS} ${CLASSIFIER_FLAGS}`;

function cli(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, OPENAI_LOGDIR: '' } });
  return { status: r.status, stderr: r.stderr };
}

describe('CLI: train-classifier --openai (their classifier_train.py)', () => {
  let tmp: string, train: string, val: string;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-cli-classifier-'));
    train = path.join(tmp, 'train');
    val = path.join(tmp, 'val');
    await writeFashionMnistPngs(48, (i) => (i < 32 ? train : val));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('writes the checkpoints the library writes with the same flags, byte for byte; logs their keys with val; resumes', async () => {
    const out = path.join(tmp, 'cli');
    const r = cli('train-classifier', '--openai', ALL, '--data-dir', train, '--val-data-dir', val, '--out-dir', out, '--threads', '1', '--seed', '7');
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /^32 images of 32x32, 10 classes from .*; 16 held out from /m);
    assert.match(r.stderr, /^step 0 \| grad_norm [\d.]+ \| param_norm [\d.]+ \| samples 8 \| train_acc@1 [\d.]+ .*\| train_loss [\d.]+ .*\| val_acc@1 [\d.]+ .*\| val_loss [\d.]+/m);
    assert.match(r.stderr, /^trained 4 steps, to step 4; checkpoints 000002, 000003 in /m);
    const names = ['model000002.pt', 'model000003.pt', 'opt000002.pt', 'opt000003.pt'];
    assert.deepStrictEqual(fs.readdirSync(out).sort(), names);

    // The same run through the library, on one thread as the CLI's.
    const threads = torch.getNumThreads();
    torch.setNumThreads(1);
    const lib = path.join(tmp, 'lib');
    const flags = openai.parseFlags(ALL);
    torch.manualSeed(7);
    const net = openai.createClassifier(flags);
    const data = await loadImageFolder(train, { imageSize: 32, classCond: true, randomCrop: true, seed: 7 });
    const held = await loadImageFolder(val, { imageSize: 32, classCond: true });
    const loop = new openai.ClassifierTrainLoop(net, { diffusion_steps: 100 }, {
      iterations: 4, anneal_lr: true, batch_size: 8, lr: 3e-4, save_interval: 2, weight_decay: 0.05, log_interval: 1, eval_interval: 2, seed: 7,
    });
    try {
      await loop.runLoop({ data: data.images, labels: data.labels!, evalData: held.images, evalLabels: held.labels, outDir: lib });
    } finally {
      torch.setNumThreads(threads);
    }
    assertSameFiles(out, lib, names);
    torch.dispose([data.images, data.labels!, held.images, held.labels!]);
    net.dispose();

    const resumed = cli('train-classifier', '--openai', `${ALL} --resume_checkpoint ${path.join(out, 'model000002.pt')}`, '--data-dir', train, '--out-dir', out, '--threads', '1', '--seed', '7');
    assert.strictEqual(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /^step 2 \|/m);
    assert.match(resumed.stderr, /^trained 2 steps, to step 4; checkpoints 000003 in /m);
    console.log(`      resumed from model000002.pt: ${resumed.stderr.split('\n').filter((l) => l.startsWith('step ')).map((l) => l.split(' |')[0]).join(', ')}`);
  });

  it('--use_checkpoint True (ours: their classifier_train.py has no such flag) says so and takes the step it takes without', () => {
    const flags = `${CLASSIFIER_FLAGS} --iterations 1 --batch_size 8 --lr 3e-4 --log_interval 1 --diffusion_steps 100`;
    const run = (extra: string, dir: string) => cli('train-classifier', '--openai', `${flags}${extra}`, '--data-dir', train, '--out-dir', path.join(tmp, dir), '--threads', '1', '--seed', '7');
    assertSameStepWithCheckpointing(run);
  });

  it('takes their README\'s flag strings verbatim; names what is wrong: an fp16 flag value, flags not of classifier_train.py, no data or out dir, disagreeing folders', () => {
    const dirs = ['--data-dir', train, '--out-dir', path.join(tmp, 'x')];
    const cases: [string[], RegExp][] = [
      // Every flag of their README line is known: the first complaint is the missing --out-dir.
      [['train-classifier', '--openai', `${README_TRAIN} ${README_CLASSIFIER}`, '--data-dir', train], /train-classifier needs --out-dir \(or OPENAI_LOGDIR/],
      [['train-classifier', '--openai', `${ALL} --classifier_use_fp16 maybe`, ...dirs], /classifier_use_fp16.*maybe/],
      [['train-classifier', '--openai', `${ALL} --num_channels 64`, ...dirs], /unknown flag --num_channels \(not a flag of their classifier_train.py\)/],
      [['train-classifier', '--openai', ALL, '--out-dir', path.join(tmp, 'x')], /train-classifier needs --data-dir/],
      [['train-classifier', '--openai', `${ALL} --data_dir ${val}`, ...dirs], /--data-dir .* and --data_dir .* in the flags disagree/],
      [['train-classifier', '--openai', ALL, '--data-dir', path.join(tmp, 'missing'), '--out-dir', path.join(tmp, 'x')], /is not a folder/],
      [['train-classifier', '--openai', `${ALL} --eval_interval 0`, ...dirs], /eval_interval must be >= 1; got 0/],
    ];
    for (const [args, want] of cases) {
      const r = cli(...args);
      assert.strictEqual(r.status, 1, args.join(' '));
      assert.match(r.stderr, want);
    }
    console.log(`      ${cases.length} wrong invocations named`);
  });
});
