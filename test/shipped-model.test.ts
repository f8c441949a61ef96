// The shipped Fashion-MNIST model (models/fashion-mnist): it loads with one call, and its
// noise-aware classifier reads real test images noised to small t far better than chance.
import * as assert from 'assert';
import { GaussianDiffusion, loadFashionMnist, Tensor, torch } from '../lib';

describe('shipped model', () => {
  it("GaussianDiffusion.pretrained('fashion-mnist') gives the diffusion, the classifier and the class names", () => {
    const p = GaussianDiffusion.pretrained('fashion-mnist');
    assert.strictEqual(p.classNames.length, 10);
    assert.strictEqual(p.classNames[7], 'Sneaker');
    assert.strictEqual(p.diffusion.options.imageSize, 32);
    assert.strictEqual(p.diffusion.options.channels, 1);
    assert.strictEqual(p.diffusion.options.samplingTimesteps, p.meta.samplingTimesteps);
    const logits = torch.noGrad(() => p.classifier.forward(torch.zeros([2, 1, 32, 32]), torch.tensor([0, 999])));
    assert.deepStrictEqual(logits.shape, [2, 10]);
    assert.throws(() => GaussianDiffusion.pretrained('imagenet'), /no model 'imagenet'/);
  });

  it("pretrained(..., { timestepRespacing }) samples ancestrally over the kept steps", async () => {
    const p = GaussianDiffusion.pretrained('fashion-mnist', { timestepRespacing: '10' });
    assert.strictEqual(p.diffusion.options.samplingTimesteps, 10);
    assert.strictEqual(p.diffusion.isDdimSampling, false);
    const steps: number[] = [];
    const images = await p.diffusion.sample({ batchSize: 2, seed: 1, onProgress: ({ t, total }) => steps.push(t, total) });
    // Ten steps over the respaced schedule (progress counts its indices, 9 down to 0).
    assert.deepStrictEqual(steps, [9, 10, 8, 10, 7, 10, 6, 10, 5, 10, 4, 10, 3, 10, 2, 10, 1, 10, 0, 10]);
    assert.deepStrictEqual(images.shape, [2, 1, 32, 32]);
    const v = images.toFloat32Array();
    assert.ok(v.every((x) => x >= 0 && x <= 1));
    images.dispose();
    assert.throws(() => GaussianDiffusion.pretrained('fashion-mnist', { timestepRespacing: 'ddim0' }), /timestepRespacing/);
  });

  it('its classifier labels real test images noised to t = 0, 100, 300 far above chance (10%)', () => {
    const { classifier, diffusion } = GaussianDiffusion.pretrained('fashion-mnist');
    const test = loadFashionMnist({ train: false, padTo: 32, limit: 1000 });
    const labels = test.labels.toArray() as number[];
    const accuracy: Record<number, number> = {};
    for (const step of [0, 100, 300]) {
      torch.manualSeed(step);
      const predicted = torch.tidy(() => {
        const t = torch.full([labels.length], step, { dtype: 'int64' });
        const x = diffusion.qSample(test.images, t, torch.randnLike(test.images));
        return torch.noGrad(() => classifier.forward(x, t).argmax(1));
      });
      const p = predicted.toArray() as number[];
      accuracy[step] = p.filter((v, i) => v === labels[i]).length / labels.length;
      predicted.dispose();
    }
    console.log(`      accuracy on 1,000 test images: ${JSON.stringify(accuracy)}`);
    assert.ok(accuracy[0] > 0.8, `t=0: ${accuracy[0]}`);
    assert.ok(accuracy[100] > 0.7, `t=100: ${accuracy[100]}`);
    assert.ok(accuracy[300] > 0.4, `t=300: ${accuracy[300]}`);
    torch.dispose([test.images, test.labels]);
  });

  it("pretrained('fashion-mnist-cfg'): the classifier-free guided model, no classifier, its labels and null class", () => {
    const p = GaussianDiffusion.pretrained('fashion-mnist-cfg');
    assert.strictEqual(p.classifier, undefined);
    assert.deepStrictEqual(p.classNames, GaussianDiffusion.pretrained('fashion-mnist').classNames);
    assert.strictEqual(p.meta.nullClass, 10);
    assert.strictEqual(typeof p.meta.cfgScale, 'number');
    assert.strictEqual(p.diffusion.model.attribute('null_class'), 10);
    assert.strictEqual(p.diffusion.model.attribute('num_classes'), 10);
  });

  it('fashion-mnist-cfg predicts the noise of real test images best given their own label, worst given another', () => {
    const { diffusion } = GaussianDiffusion.pretrained('fashion-mnist-cfg');
    const test = loadFashionMnist({ train: false, padTo: 32, limit: 500 });
    const n = test.labels.shape[0];
    const mse: Record<string, number> = {};
    torch.manualSeed(1);
    torch.tidy(() => {
      const t = torch.randint(50, 600, [n], { dtype: 'int64' });
      const noise = torch.randnLike(test.images);
      const x = diffusion.qSample(test.images, t, noise);
      const labels = { own: test.labels, null: torch.full([n], 10, { dtype: 'int64' }), other: test.labels.add(5).remainder(10) };
      for (const [k, y] of Object.entries(labels)) {
        mse[k] = torch.noGrad(() => (diffusion.model.forward(x, t, y) as Tensor).sub(noise).square().mean().item() as number);
      }
    });
    console.log(`      noise MSE over 500 test images at t in [50, 600): own label ${mse.own.toFixed(5)}, null ${mse.null.toFixed(5)}, label + 5 ${mse.other.toFixed(5)}`);
    assert.ok(mse.own < mse.null && mse.null < mse.other, JSON.stringify(mse));
    torch.dispose([test.images, test.labels]);
  });
});
