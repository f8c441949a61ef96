// Every tensor is freed by dispose, tidy or GC: torch.memory() tells, and RSS stays flat.
import * as assert from 'assert';
import * as path from 'path';
import { GaussianDiffusion, jit, torch, Tensor } from '../lib';
import { FIXTURES } from './helpers';

describe('memory', () => {
  it('10,000 create-and-dispose iterations leave the tensor count where it started', () => {
    const before = torch.memory();
    const rss = process.memoryUsage().rss;
    for (let i = 0; i < 10000; i++) {
      const a = torch.randn([64, 64]);
      const m = a.mul(2);
      const b = m.add(1);
      a.dispose();
      m.dispose();
      b.dispose();
    }
    assert.deepStrictEqual(torch.memory(), before);
    const grown = (process.memoryUsage().rss - rss) / 2 ** 20;
    assert.ok(grown < 50, `RSS grew ${grown.toFixed(1)} MB`);
  });

  it('10,000 iterations inside tidy leave the tensor count where it started', () => {
    const before = torch.memory();
    const rss = process.memoryUsage().rss;
    for (let i = 0; i < 10000; i++) {
      torch.tidy(() => {
        torch.randn([64, 64]).mul(2).add(1).sum();
      });
    }
    const kept = torch.tidy(() => torch.ones([3]).mul(2));
    assert.strictEqual(torch.memory().tensors, before.tensors + 1);
    kept.dispose();
    assert.deepStrictEqual(torch.memory(), before);
    const grown = (process.memoryUsage().rss - rss) / 2 ** 20;
    assert.ok(grown < 50, `RSS grew ${grown.toFixed(1)} MB`);
  });

  it('tidy keeps what it returns (nested in arrays and objects), and nests', () => {
    const before = torch.memory().tensors;
    const out = torch.tidy(() => {
      const inner = torch.tidy(() => {
        torch.zeros([2]);
        return torch.ones([2]);
      });
      torch.zeros([5]);
      return { list: [inner, torch.full([1], 7)] };
    });
    assert.strictEqual(torch.memory().tensors, before + 2);
    assert.deepStrictEqual(out.list[1].toArray(), [7]);
    torch.dispose(out);
    assert.strictEqual(torch.memory().tensors, before);
    assert.throws(() => torch.tidy(() => { throw new Error('inside'); }), /inside/);
    assert.strictEqual(torch.memory().tensors, before);
  });

  it('tidy refuses an async function before calling it, and a function returning a Promise after', async () => {
    const before = torch.memory().tensors;
    let started = false;
    assert.throws(() => torch.tidy(async () => { started = true; return torch.ones([2]); }), {
      name: 'TypeError', message: 'tidy() does not support async functions: the scope would close before the Promise settles',
    });
    assert.strictEqual(started, false);
    const thenable = { then: (resolve: (v: number) => void) => resolve(1) };
    assert.throws(() => torch.tidy(() => { torch.zeros([3]); return thenable; }), {
      name: 'TypeError', message: 'tidy() does not support functions that return a Promise: the scope would close before the Promise settles',
    });
    assert.throws(() => torch.tidy(7 as unknown as () => void), { name: 'TypeError', message: 'tidy() expects a function but received number' });
    await new Promise((r) => setImmediate(r));
    assert.strictEqual(torch.memory().tensors, before);
  });

  it('torch.memory() counts bytes; garbage collection frees what was dropped', async function () {
    const gc = (global as { gc?: () => void }).gc;
    if (!gc) this.skip();
    // N-API finalizers run after the collection, from the event loop.
    const collect = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        gc!();
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    await collect();
    const before = torch.memory();
    let t: Tensor | null = torch.zeros([1000], { dtype: 'float64' });
    assert.strictEqual(torch.memory().bytes - before.bytes, 8000);
    t = null;
    void t;
    await collect();
    assert.deepStrictEqual(torch.memory(), before);
  });

  it('a disposed tensor says so when used', () => {
    const t = torch.ones([2]);
    t.dispose();
    assert.strictEqual(t.isDisposed, true);
    assert.throws(() => t.add(1), { message: 'Tensor was disposed and cannot be used' });
    assert.throws(() => torch.ones([2]).add(t), { message: 'Tensor other was disposed and cannot be used' });
    assert.strictEqual(String(t), 'tensor(<disposed>)');
  });

  it('a guided sample leaves no tensors behind', async () => {
    const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
    const d = new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: 10 });
    const before = torch.memory().tensors;
    const img = await d.sample({ batchSize: 2, condFn: (x) => x.mul(-0.1) });
    img.dispose();
    assert.strictEqual(torch.memory().tensors, before);
  });
});
