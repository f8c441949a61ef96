// The examples (examples/), tiny: 2 images, 10 DDIM steps. The guidance must lower the loss it
// guides by, against the unguided samples of the same seed, so CI keeps the examples working.
// (5 steps with eta 1 gave NaN even unguided, until ddim_update clamped its noise coefficient:
// test/ddim-eta.test.ts.)
import * as assert from 'assert';
import * as path from 'path';
import { jit, torch } from '../lib';
import { cnnLoss, sampleBags } from '../examples/bag';
import { measurementLoss, superres } from '../examples/superres';
import { collectedMemory } from './helpers';

const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;

describe('examples', () => {
  it("bag: the clean-image CNN's cross-entropy for Bag is lower on guided samples than on unguided ones", async () => {
    const before = (await collectedMemory()).tensors;
    const cnn = jit.load(path.resolve(__dirname, '..', '..', 'examples', 'bag-cnn.pt')).eval();
    const s = await sampleBags(cnn, { n: 2, ddimSteps: 10, eta: 1, guidanceScale: 2, guidanceInterval: [0, 998], cnnSteps: 0, seed: 1 });
    const [unguided, guided] = [s.unguided, s.guided].map((x) => torch.tidy(() => cnnLoss(cnn, x.mul(2).sub(1), s.bag).toArray() as number[]));
    console.log(`      2 images, DDIM 10 steps, eta 1, scale 2, t <= 998: cross-entropy for Bag unguided ${unguided.map((v) => v.toFixed(3)).join(', ')}, guided ${guided.map((v) => v.toFixed(3)).join(', ')}`);
    assert.ok(mean(guided) < mean(unguided));
    torch.dispose(s.unguided, s.guided);
    cnn.dispose();
    assert.strictEqual(torch.memory().tensors, before);
  });

  it('superres: DPS samples fit the 8x8 measurement better than unguided ones', async () => {
    const before = (await collectedMemory()).tensors;
    const r = await superres({ n: 2, ddimSteps: 10, eta: 1, guidanceScale: 3, guidanceInterval: [0, 998], seed: 1 });
    const [unguided, guided] = [r.unguided, r.guided].map((x) => torch.tidy(() => measurementLoss(x.mul(2).sub(1), r.y).toArray() as number[]));
    console.log(`      2 images, DDIM 10 steps, eta 1, scale 3, t <= 998: ||avgpool(x) - y||^2 unguided ${unguided.map((v) => v.toFixed(3)).join(', ')}, DPS ${guided.map((v) => v.toFixed(3)).join(', ')}`);
    assert.ok(mean(guided) < mean(unguided));
    torch.dispose(r.x, r.y, r.unguided, r.guided);
    assert.strictEqual(torch.memory().tensors, before);
  });
});
