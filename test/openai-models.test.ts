// openai/guided-diffusion's UNetModel and EncoderUNetModel, built natively, against their
// code: fixtures from scripts/fixtures/openai_models.py (their README's flag sets at
// reduced width, every parameter random), the full-size 64x64 names and shapes, save() to
// TorchScript, and the option errors.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { jit, loadSafetensors, Module, openai, saveSafetensors, Tensor, torch } from '../lib';
import { FIXTURES, testPython } from './helpers';

const DIR = path.join(FIXTURES, 'openai');

interface Case {
  name: string;
  kind: 'unet' | 'encoder';
  kwargs: Record<string, unknown>;
  flags: string | null;
  seed: number;
  x_shape: number[];
  fp16: boolean;
  num_params: number;
  params_sha256: string;
}

const { cases } = JSON.parse(fs.readFileSync(path.join(DIR, 'cases.json'), 'utf8')) as { cases: Case[] };
const full = JSON.parse(fs.readFileSync(path.join(DIR, 'full_64x64.json'), 'utf8')) as Record<
  'model' | 'classifier',
  { flags: string; params: [string, number[]][] }
>;
const mapping = JSON.parse(fs.readFileSync(path.join(DIR, 'mapping.json'), 'utf8')) as Record<
  'models' | 'classifiers',
  { flags: string; parsed: Record<string, unknown>; kwargs: Record<string, unknown> }[]
>;

function build(c: Case): Module {
  return c.kind === 'unet' ? new openai.UNetModel(c.kwargs as never) : new openai.EncoderUNetModel(c.kwargs as never);
}

/** name:d0,d1 lines of a module's state dict in order, as the fixture script hashes them. */
function namesAndShapes(m: Module): [string, number[]][] {
  const sd = m.stateDict();
  const out = Object.entries(sd).map(([n, t]) => [n, [...t.shape]] as [string, number[]]);
  torch.dispose(Object.values(sd));
  return out;
}

function digest(entries: [string, number[]][]): string {
  return createHash('sha256')
    .update(entries.map(([n, s]) => `${n}:${s.join(',')}\n`).join(''))
    .digest('hex');
}

/** The fixture script's draws (cases.json "init"), replayed with the same generator. */
function randomWeights(entries: [string, number[]][], seed: number): Record<string, Tensor> {
  torch.manualSeed(seed);
  const sd: Record<string, Tensor> = {};
  for (const [name, shape] of entries) {
    const r = torch.randn(shape);
    if (shape.length >= 2) {
      const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
      sd[name] = r.mul(1 / fanIn ** 0.5);
    } else if (name.endsWith('.weight')) {
      sd[name] = torch.tidy(() => r.mul(0.1).add(1));
    } else {
      sd[name] = r.mul(0.1);
    }
    r.dispose();
  }
  return sd;
}

/** A fixture's network with the fixture script's weights, its inputs and their output. */
function loadedCase(c: Case): { net: Module; x: Tensor; io: Record<string, Tensor> } {
  const net = build(c).eval();
  const entries = namesAndShapes(net);
  assert.strictEqual(entries.length, c.num_params, 'parameter count');
  assert.strictEqual(digest(entries), c.params_sha256, 'parameter names and shapes in state_dict order');
  const sd = randomWeights(entries, c.seed);
  net.loadStateDict(sd);
  torch.dispose(Object.values(sd));
  const io = loadSafetensors(path.join(DIR, `${c.name}.safetensors`));
  torch.manualSeed(c.seed + 1);
  return { net, x: torch.randn(c.x_shape), io };
}

function maxAbs(a: Tensor, b: Tensor): number {
  return torch.tidy(() => a.sub(b).abs().max().item() as number);
}

describe('openai models: parity with their code (reduced widths, random weights)', function () {
  this.timeout(240_000);
  const errors: string[] = [];
  after(() => console.log(`      max |ours - theirs|: ${errors.join(', ')}`));

  for (const c of cases) {
    it(`${c.name}${c.flags ? ` (${c.flags.length > 60 ? c.flags.slice(0, 60) + '...' : c.flags})` : ''}`, () => {
      const { net, x, io } = loadedCase(c);
      const out = torch.noGrad(() => (io.y ? net.forward(x, io.t, io.y) : net.forward(x, io.t)));
      assert.deepStrictEqual(out.shape, io.out.shape);
      assert.strictEqual(out.dtype, 'float32');
      const err = maxAbs(out, io.out);
      errors.push(`${c.name} ${err.toExponential(1)}`);
      // float16 convs: both sides run the same LibTorch kernels on the same float16 values.
      assert.ok(err <= (c.fp16 ? 1e-3 : 1e-5), `max abs error ${err}`);
      torch.dispose([x, out, ...Object.values(io)]);
      net.dispose();
    });
  }
});

describe('openai models: full-size 64x64 (their 64x64_diffusion.pt and 64x64_classifier.pt layouts)', function () {
  this.timeout(240_000);
  const kwargsFor = (kind: 'models' | 'classifiers'): Record<string, unknown> => {
    const entry = mapping[kind].find((e) => e.flags === full[kind === 'models' ? 'model' : 'classifier'].flags);
    assert.ok(entry, 'mapping.json has the flags of full_64x64.json');
    return entry.kwargs;
  };

  it('UNetModel with their kwargs has their 541 parameter names and shapes, in order', () => {
    const net = new openai.UNetModel(kwargsFor('models') as never);
    const ours = namesAndShapes(net);
    assert.strictEqual(ours.length, 541);
    assert.deepStrictEqual(ours, full.model.params);
    // use_fp16: the torso's convs are float16, the rest float32, as their convert_to_fp16.
    const p = net.namedParameters();
    assert.strictEqual(p['input_blocks.1.0.in_layers.2.weight'].dtype, 'float16');
    assert.strictEqual(p['middle_block.1.qkv.weight'].dtype, 'float16');
    assert.strictEqual(p['output_blocks.0.0.out_layers.3.weight'].dtype, 'float16');
    assert.strictEqual(p['input_blocks.1.0.in_layers.0.weight'].dtype, 'float32');
    assert.strictEqual(p['time_embed.0.weight'].dtype, 'float32');
    assert.strictEqual(p['out.2.weight'].dtype, 'float32');
    torch.dispose(Object.values(p));
    net.dispose();
  });

  it('EncoderUNetModel with their kwargs has their 307 parameter names and shapes, in order', () => {
    const net = new openai.EncoderUNetModel(kwargsFor('classifiers') as never);
    const ours = namesAndShapes(net);
    assert.strictEqual(ours.length, 307);
    assert.deepStrictEqual(ours, full.classifier.params);
    net.dispose();
  });
});

describe('openai models: save() is TorchScript that Python runs', function () {
  this.timeout(240_000);
  for (const name of ['model_additive_emb', 'classifier_pool_attention']) {
    it(`${name}: torch.jit.load in Python and jit.load here give our output`, () => {
      const c = cases.find((k) => k.name === name) as Case;
      const { net, x, io } = loadedCase(c);
      const args = io.y ? [x, io.t, io.y] : [x, io.t];
      const ours = torch.noGrad(() => net.forward(...(args as [Tensor, Tensor])));

      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-openai-'));
      try {
        const file = path.join(dir, 'net.pt');
        net.save(file);
        const inputs: Record<string, Tensor> = { x, t: io.t };
        if (io.y) inputs.y = io.y;
        saveSafetensors(inputs, path.join(dir, 'in.safetensors'));
        const script = path.resolve(__dirname, '..', '..', 'scripts', 'fixtures', 'openai_check_saved.py');
        const r = spawnSync(testPython(), [script, file, path.join(dir, 'in.safetensors'), path.join(dir, 'out.safetensors')], { encoding: 'utf8' });
        assert.strictEqual(r.status, 0, r.stderr);
        const py = loadSafetensors(path.join(dir, 'out.safetensors'));
        assert.ok(maxAbs(py.out, ours) <= 1e-6, 'python vs ours');
        assert.ok(maxAbs(py.out, io.out) <= 1e-5, 'python vs their code');

        const back = jit.load(file).eval();
        assert.strictEqual(back.attribute('gd_kind'), c.kind === 'unet' ? 'openai_unet' : 'openai_encoder');
        const again = torch.noGrad(() => back.forward(...(args as [Tensor, Tensor])));
        assert.strictEqual(maxAbs(again, ours), 0);
        torch.dispose([py.out, again]);
        back.dispose();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      torch.dispose([x, ours, ...Object.values(io)]);
      net.dispose();
    });
  }
});

describe('openai models: memory', function () {
  this.timeout(120_000);
  it('building, loading, running and disposing a net leaves the tensor count where it started', () => {
    const c = cases.find((k) => k.name === 'model_additive_emb') as Case;
    const before = torch.memory();
    for (let i = 0; i < 2; i++) {
      const { net, x, io } = loadedCase(c);
      const out = torch.noGrad(() => net.forward(x, io.t, io.y));
      torch.dispose([x, out, ...Object.values(io)]);
      net.dispose();
    }
    assert.deepStrictEqual(torch.memory(), before);
  });
});

describe('openai models: option errors', () => {
  const base = {
    image_size: 16, in_channels: 3, model_channels: 32, out_channels: 3, num_res_blocks: 1,
    attention_resolutions: [2], channel_mult: [1, 2], num_head_channels: 16,
  };

  it('names a missing, unknown, doubled or mistyped option', () => {
    const { model_channels: _, ...noWidth } = base;
    assert.throws(() => new openai.UNetModel(noWidth as never), { name: 'TypeError', message: 'UNetModel: model_channels (modelChannels) is required' });
    assert.throws(() => new openai.UNetModel({ ...base, modelChanels: 32 } as never), { name: 'TypeError', message: "UNetModel: unknown option 'modelChanels' (did you mean 'modelChannels'?)" });
    assert.throws(() => new openai.UNetModel({ ...base, modelChannels: 32 } as never), { name: 'TypeError', message: 'UNetModel: modelChannels is given twice (as modelChannels and model_channels)' });
    assert.throws(() => new openai.UNetModel({ ...base, model_channels: '32' } as never), { name: 'TypeError', message: "UNetModel: expected a positive integer for model_channels but received '32'" });
    assert.throws(() => new openai.UNetModel({ ...base, num_res_blocks: 0 }), { name: 'RangeError', message: 'UNetModel: expected a positive integer for num_res_blocks but received 0' });
    assert.throws(() => new openai.UNetModel({ ...base, dropout: 1.5 }), { name: 'RangeError', message: 'UNetModel: expected a number in [0, 1) for dropout but received 1.5' });
    assert.throws(() => new openai.UNetModel({ ...base, attention_resolutions: [2, -1] }), { name: 'RangeError', message: 'UNetModel: expected an array of downsample rates (integers >= 0) for attention_resolutions but received [2, -1]' });
    assert.throws(() => new openai.UNetModel({ ...base, num_head_channels: 0 }), { name: 'RangeError', message: 'UNetModel: expected a positive integer or -1 for num_head_channels but received 0' });
    assert.throws(() => new openai.UNetModel({ ...base, num_classes: 2.5 }), { name: 'RangeError', message: 'UNetModel: expected a positive integer or null for num_classes but received 2.5' });
    assert.throws(() => new openai.UNetModel({ ...base, dims: 3 }), { name: 'RangeError', message: 'UNetModel: expected one of 2 for dims but received 3' });
    assert.throws(() => new openai.EncoderUNetModel({ ...base, pool: 'max' } as never), {
      name: 'RangeError',
      message: "EncoderUNetModel: expected one of 'adaptive', 'attention', 'spatial', 'spatial_v2' for pool but received 'max'",
    });
    assert.throws(() => new openai.UNetModel(null as never), { name: 'TypeError', message: 'UNetModel: expected an options object but received null' });
  });

  it('names widths their GroupNorm and heads cannot take', () => {
    assert.throws(() => new openai.UNetModel({ ...base, model_channels: 48 }), {
      message: 'UNetModel: channel_mult[0] * model_channels = 48 must be a positive multiple of 32 (their GroupNorm has 32 groups)',
    });
    assert.throws(() => new openai.UNetModel({ ...base, num_head_channels: 24 }), {
      message: 'UNetModel: attention at a width of 64 channels, which is not divisible by num_head_channels 24',
    });
    assert.throws(() => new openai.EncoderUNetModel({ ...base, num_head_channels: -1, pool: 'attention' }), {
      message: "EncoderUNetModel: pool 'attention' needs num_head_channels (their AttentionPool2d sizes its heads by it)",
    });
  });

  it('forward: y iff num_classes, labels in range, input shapes', () => {
    const cond = new openai.UNetModel({ ...base, num_classes: 10 }).eval();
    const uncond = new openai.UNetModel(base).eval();
    const x = torch.randn([2, 3, 16, 16]);
    const t = torch.tensor([1, 2], { dtype: 'int64' });
    const y = torch.tensor([0, 10], { dtype: 'int64' });
    assert.throws(() => cond.forward(x, t), { name: 'TypeError', message: 'UNetModel.forward: y (class labels of shape (N,)) is required: the model is class-conditional (num_classes=10)' });
    assert.throws(() => uncond.forward(x, t, t), { name: 'TypeError', message: 'UNetModel.forward: y was given but the model is not class-conditional (num_classes is not set)' });
    // The module itself checks too (a saved module has no TypeScript around it).
    assert.throws(() => Module.prototype.forward.call(cond, x, t), /UNetModel: y \(class labels of shape \(N,\)\) is required: the model is class-conditional \(num_classes=10\)/);
    assert.throws(() => cond.forward(x, t, y), /UNetModel: class labels must be in \[0, 10\), got 0\.\.10/);
    assert.throws(() => cond.forward(x, t, torch.tensor([0.5, 1])), /UNetModel: y must hold integer class labels, got dtype/);
    assert.throws(() => uncond.forward(torch.randn([2, 4, 16, 16]), t), /UNetModel: x must have shape \(N, 3, H, W\), got \[2, 4, 16, 16\]/);
    assert.throws(() => uncond.forward(torch.randn([2, 3, 15, 16]), t), /UNetModel: image height and width must be divisible by 2, got 15x16/);
    assert.throws(() => uncond.forward(x, torch.tensor([1, 2, 3])), /UNetModel: timesteps must have shape \(2,\), got \[3\]/);
    const pool = new openai.EncoderUNetModel({ ...base, pool: 'attention' }).eval();
    assert.throws(() => pool.forward(torch.randn([1, 3, 32, 32]), torch.tensor([1])), /EncoderUNetModel: the attention pool needs images of 8x8 at its input \(image_size\), got 16x16/);
    torch.dispose([x, t, y]);
    for (const m of [cond, uncond, pool]) m.dispose();
  });
});

const tinyFlags = JSON.parse(fs.readFileSync(path.join(DIR, 'flags.json'), 'utf8')) as {
  model: string;
  classifier: string;
  classifier_kwargs: Record<string, unknown>;
};

/** Our camelCase options as snake_case, restricted to the keys their constructor call had. */
function asTheirKwargs(ours: Record<string, unknown>, theirs: Record<string, unknown>): Record<string, unknown> {
  const snake = Object.fromEntries(Object.entries(ours).map(([k, v]) => [k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`), v]));
  return Object.fromEntries(Object.keys(theirs).map((k) => [k, snake[k]]));
}

describe('openai flags: parseFlags, createModel, createClassifier', function () {
  this.timeout(240_000);

  it('parseFlags reads the README line as their argparse does', () => {
    const f = openai.parseFlags(
      '--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 64 --learn_sigma True --noise_schedule cosine --num_channels 192 --num_head_channels 64 --num_res_blocks 3 --resblock_updown True --use_new_attention_order True --use_fp16 True --use_scale_shift_norm True',
    );
    assert.deepStrictEqual(f, {
      attention_resolutions: '32,16,8', class_cond: true, diffusion_steps: 1000, image_size: 64, learn_sigma: true,
      noise_schedule: 'cosine', num_channels: 192, num_head_channels: 64, num_res_blocks: 3, resblock_updown: true,
      use_new_attention_order: true, use_fp16: true, use_scale_shift_norm: true,
    });
    assert.deepStrictEqual(openai.parseFlags('--dropout=0.1 --timestep_respacing ddim25 --use_ddim false --channel_mult "" --num_heads_upsample -1'), {
      dropout: 0.1, timestep_respacing: 'ddim25', use_ddim: false, channel_mult: '', num_heads_upsample: -1,
    });
    for (const e of [...mapping.models, ...mapping.classifiers]) {
      const ours = openai.parseFlags(e.flags);
      for (const [k, v] of Object.entries(e.parsed)) {
        if (k in openai.MODEL_FLAG_DEFAULTS || k in openai.CLASSIFIER_FLAG_DEFAULTS) assert.deepStrictEqual(ours[k], v, `${k} of ${e.flags}`);
      }
    }
    assert.throws(() => openai.parseFlags('--image_size'), { message: 'parseFlags: flag --image_size has no value' });
    assert.throws(() => openai.parseFlags('image_size 64'), { message: "parseFlags: expected a flag such as --image_size but found 'image_size'" });
  });

  it(`maps every MODEL_FLAGS of their README to the kwargs of their create_model (${mapping.models.length} flag sets)`, () => {
    for (const e of mapping.models) {
      const ours = openai.modelOptions(openai.parseFlags(e.flags)) as unknown as Record<string, unknown>;
      assert.deepStrictEqual(asTheirKwargs(ours, e.kwargs), e.kwargs, e.flags);
    }
  });

  it(`maps every classifier of their README to the kwargs of their create_classifier (${mapping.classifiers.length} flag sets)`, () => {
    for (const e of mapping.classifiers) {
      const ours = openai.classifierOptions(openai.parseFlags(e.flags)) as unknown as Record<string, unknown>;
      assert.deepStrictEqual(asTheirKwargs(ours, e.kwargs), e.kwargs, e.flags);
    }
    const tiny = openai.classifierOptions(openai.parseFlags(tinyFlags.classifier)) as unknown as Record<string, unknown>;
    assert.deepStrictEqual(asTheirKwargs(tiny, tinyFlags.classifier_kwargs), tinyFlags.classifier_kwargs);
  });

  it('createModel and createClassifier build working nets from the flags of the committed tiny checkpoints', () => {
    const model = openai.createModel(openai.parseFlags(tinyFlags.model)).eval();
    assert.ok(model instanceof openai.UNetModel);
    assert.strictEqual(model.attribute('num_classes'), 1000);
    const classifier = openai.createClassifier(openai.parseFlags(tinyFlags.classifier)).eval();
    assert.ok(classifier instanceof openai.EncoderUNetModel);
    const x = torch.randn([2, 3, 16, 16]);
    const t = torch.tensor([10, 900], { dtype: 'int64' });
    const eps = torch.noGrad(() => model.forward(x, t, torch.tensor([207, 3], { dtype: 'int64' })));
    const logits = torch.noGrad(() => classifier.forward(x, t));
    assert.deepStrictEqual(eps.shape, [2, 6, 16, 16]);
    assert.deepStrictEqual(logits.shape, [2, 1000]);
    torch.dispose([x, t, eps, logits]);
    model.dispose();
    classifier.dispose();
  });

  it('use_fp16 builds float16 convolutions for CUDA and float32 ones on the CPU, saying so once', () => {
    const convDtype = (m: openai.UNetModel | openai.EncoderUNetModel, name: string) => {
      const p = m.namedParameters();
      const dtype = p[name].dtype;
      torch.dispose(Object.values(p));
      m.dispose();
      return dtype;
    };
    const fp16 = { use_fp16: true, classifier_use_fp16: true };
    const modelFlags = { ...openai.parseFlags(tinyFlags.model), ...fp16 };
    const classifierFlags = { ...openai.parseFlags(tinyFlags.classifier), ...fp16 };
    const conv = 'input_blocks.1.0.in_layers.2.weight';
    assert.strictEqual(convDtype(openai.createModel(modelFlags, { device: 'cpu' }), conv), 'float32');
    assert.strictEqual(convDtype(openai.createClassifier(classifierFlags, { device: 'cpu' }), conv), 'float32');
    assert.strictEqual(convDtype(openai.createModel(modelFlags, { device: 'cuda' }), conv), 'float16');
    assert.strictEqual(convDtype(openai.createClassifier(classifierFlags, { device: 'cuda:0' }), conv), 'float16');
    // The default is where this build runs: CUDA when it has it.
    assert.strictEqual(convDtype(openai.createModel(modelFlags), conv), torch.cuda.isAvailable() ? 'float16' : 'float32');
    assert.throws(() => openai.createModel(modelFlags, { devcie: 'cpu' } as never), /createModel: unknown option 'devcie'/);
    // Said once per process: a fresh one builds three nets on the CPU.
    const script = `const { openai } = require(${JSON.stringify(path.resolve(__dirname, '..', 'lib'))});
      const f = { ...openai.parseFlags(${JSON.stringify(tinyFlags.model)}), use_fp16: true };
      for (let i = 0; i < 3; i++) openai.createModel(f, { device: 'cpu' }).dispose();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stderr);
    const said = r.stderr.split('\n').filter((l) => l.includes('[GD_FP16_ON_CPU]'));
    assert.strictEqual(said.length, 1, r.stderr);
    assert.match(said[0], /Warning: createModel: use_fp16 on the CPU builds float32 convolutions \(float16 ones are slow on CPUs\)/);
  });

  it('accepts camelCase flags and refuses unknown ones by name', () => {
    const a = openai.modelOptions({ imageSize: 64, numChannels: 64, classCond: true, learnSigma: 'True' });
    const b = openai.modelOptions(openai.parseFlags('--image_size 64 --num_channels 64 --class_cond True --learn_sigma True'));
    assert.deepStrictEqual(a, b);
    assert.strictEqual(a.numClasses, 1000);
    assert.strictEqual(a.outChannels, 6);
    assert.deepStrictEqual(a.attentionResolutions, [4, 8]);
    assert.throws(() => openai.createModel({ num_channel: 64 }), { name: 'TypeError', message: "createModel: unknown flag 'num_channel'" });
    assert.throws(() => openai.createModel({ image_size: 48 }), { name: 'RangeError', message: 'createModel: unsupported image size: 48 (64, 128, 256 or 512, or give channel_mult)' });
    // Infinity is not "null" (JSON's spelling), and a long value is cut short.
    assert.throws(() => openai.createModel({ image_size: 1e400 }), { name: 'TypeError', message: 'createModel: expected an integer for image_size but received Infinity' });
    assert.throws(() => openai.createModel({ image_size: '1e400' }), { name: 'TypeError', message: "createModel: expected an integer for image_size but received '1e400'" });
    assert.throws(() => openai.createModel({ learn_sigma: 'y'.repeat(100) }), {
      name: 'TypeError',
      message: `createModel: expected a boolean (True/False) for learn_sigma but received '${'y'.repeat(40)}...' (100 characters)`,
    });
    assert.throws(() => openai.createModel({ class_cond: 'maybe' }), { name: 'TypeError', message: "createModel: expected a boolean (True/False) for class_cond but received 'maybe'" });
    assert.throws(() => openai.createClassifier({ classifier_pool: 'max' }), {
      name: 'RangeError',
      message: "createClassifier: expected one of 'adaptive', 'attention', 'spatial', 'spatial_v2' for classifier_pool but received 'max'",
    });
    // Diffusion and sampling flags ride along untouched.
    assert.strictEqual(openai.modelOptions(openai.parseFlags('--timestep_respacing 250 --use_ddim True --classifier_scale 1.0')).imageSize, 64);
  });
});
