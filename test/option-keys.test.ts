// Every options object a JS user passes refuses keys it does not know, naming each and the
// nearest known key (issue 21 D17); pretrained() takes a model name, not a path.
import * as assert from 'assert';
import * as path from 'path';
import {
  Classifier, GaussianDiffusion, jit, launch, LinearClassifier, openai, readStateDict, saveImage, torch, trainClassifier,
  trainDiffusion, Unet,
} from '../lib';
import { FIXTURES } from './helpers';

const TOY = path.join(FIXTURES, 'diffusion', 'toy_model.pt');

describe('options objects refuse unknown keys, naming the nearest known one', () => {
  it('models, tensors, images, checkpoints, autograd', () => {
    const cases: [() => unknown, string][] = [
      [() => new Unet({ dim: 8, dimMult: [1, 2] } as never), "Unet: unknown option 'dimMult' (did you mean 'dimMults'?)"],
      [() => new Classifier({ imageSize: 8, numClasses: 3, num_res_blocks: 2 } as never), "Classifier: unknown option 'num_res_blocks' (did you mean 'numResBlocks'?)"],
      [() => new LinearClassifier({ imageSize: 2, numClasses: 3, classes: 3 } as never), "LinearClassifier: unknown option 'classes'"],
      [() => torch.zeros([2], { dtyp: 'float32' } as never), "tensor options: unknown option 'dtyp' (did you mean 'dtype'?)"],
      [() => torch.tensor([1, 2], { requireGrad: true } as never), "tensor options: unknown option 'requireGrad' (did you mean 'requiresGrad'?)"],
      [() => saveImage(torch.zeros([1, 3, 4, 4]), '/tmp/never-written.png', { nrows: 2 } as never), "image grid: unknown option 'nrows' (did you mean 'nrow'?)"],
      [() => readStateDict(path.join(FIXTURES, 'torch-save', 'linear.pt'), { kye: 'model' } as never), "readStateDict: unknown option 'kye' (did you mean 'key'?)"],
      [() => new LinearClassifier({ imageSize: 2, channels: 1, numClasses: 3 }).loadStateDict({}, { strct: false } as never), "loadStateDict: unknown option 'strct' (did you mean 'strict'?)"],
      [() => torch.autograd.grad(torch.ones([1]), torch.ones([1]), { retain_graph: true } as never), "autograd.grad: unknown option 'retain_graph' (did you mean 'retainGraph'?)"],
      [() => new GaussianDiffusion(jit.load(TOY), { imageSize: 8, sampling_timesteps: 5 } as never), "GaussianDiffusion: unknown option 'sampling_timesteps' (did you mean 'samplingTimesteps'?)"],
      [() => new openai.UNetModel({ image_size: 8, in_channels: 3, model_channels: 32, out_channels: 3, num_res_blocks: 1, attention_resolutions: [], num_head: 2 } as never),
        "UNetModel: unknown option 'num_head' (did you mean 'numHeads'?)"],
      [() => new Unet({ dim: 8, colour: 1, dimMults: [1], zz: 2 } as never), "Unet: unknown options 'colour', 'zz'"],
    ];
    for (const [fn, message] of cases) assert.throws(fn, { name: 'TypeError', message });
  });

  it('sample() with a typo, the trainers, launch and initProcessGroup reject the same way', async () => {
    const d = new GaussianDiffusion(jit.load(TOY), { imageSize: 8, channels: 3, timesteps: 10 });
    await assert.rejects(d.sample({ batchSize: 1, seeed: 1 } as never), { name: 'TypeError', message: "sample(): unknown option 'seeed' (did you mean 'seed'?)" });
    const data = torch.zeros([4, 1, 8, 8]);
    await assert.rejects(trainDiffusion(new Unet({ dim: 8, channels: 1 }), { data, steps: 1, stepz: 3 } as never), {
      name: 'TypeError', message: "trainDiffusion: unknown option 'stepz' (did you mean 'steps'?)",
    });
    await assert.rejects(trainClassifier(new LinearClassifier({ imageSize: 8, channels: 1, numClasses: 2 }), { data, labels: torch.zeros([4], { dtype: 'int64' }), steps: 1, label: 1 } as never), {
      name: 'TypeError', message: "trainClassifier: unknown option 'label' (did you mean 'labels'?)",
    });
    // A diffusion trainer's key is unknown to the classifier trainer.
    await assert.rejects(trainClassifier(new LinearClassifier({ imageSize: 8, channels: 1, numClasses: 2 }), { data, labels: torch.zeros([4], { dtype: 'int64' }), steps: 1, objective: 'pred_v' } as never), {
      name: 'TypeError', message: "trainClassifier: unknown option 'objective'",
    });
    assert.throws(() => launch({ nprocPerNode: 1, script: 'x.js', nproc: 2 } as never), { name: 'TypeError', message: "launch: unknown option 'nproc'" });
    await assert.rejects(torch.distributed.initProcessGroup({ worldsize: 2 } as never), { name: 'TypeError', message: "initProcessGroup: unknown option 'worldsize' (did you mean 'worldSize'?)" });
  });
});

describe('pretrained(): a name is a name', () => {
  it('paths are refused as names and pointed at the dir option; unknown names list the shipped ones', () => {
    for (const name of ['/etc', '../../../etc', './models/fashion-mnist', 'models/fashion-mnist']) {
      assert.throws(() => GaussianDiffusion.pretrained(name), {
        message: `pretrained: '${name}' is a path, not a model name: the package ships 'fashion-mnist', 'fashion-mnist-cfg'; load a model directory of your own with pretrained(undefined, { dir: '${name}' })`,
      });
    }
    assert.throws(() => GaussianDiffusion.pretrained('imagenet'), { message: "pretrained: no model 'imagenet': the package ships 'fashion-mnist', 'fashion-mnist-cfg' (retrained by npm run train:default)" });
    assert.throws(() => GaussianDiffusion.pretrained(undefined, { dir: '/tmp' }), { message: 'pretrained: /tmp holds no model.json (a model directory holds model.json, unet.pt and classifier.pt)' });
    assert.throws(() => GaussianDiffusion.pretrained('fashion-mnist', { steps: 20 } as never), { name: 'TypeError', message: "pretrained: unknown option 'steps'" });
  });

  it('the dir option loads a model directory: the shipped one by its path gives the same model', () => {
    const byName = GaussianDiffusion.pretrained('fashion-mnist');
    const byDir = GaussianDiffusion.pretrained(undefined, { dir: path.join(__dirname, '..', '..', 'models', 'fashion-mnist') });
    assert.deepStrictEqual(byDir.classNames, byName.classNames);
    assert.deepStrictEqual(byDir.meta, byName.meta);
    const x = torch.randn([1, 1, 32, 32], { dtype: 'float32' });
    const t = torch.tensor([5]);
    const a = byName.classifier.forward(x, t);
    const b = byDir.classifier.forward(x, t);
    assert.strictEqual(a.sub(b).abs().amax().item(), 0);
    torch.dispose([x, t, a, b]);
  });
});
