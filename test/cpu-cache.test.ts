// The CPU allocator's cache of large blocks (native/js/cpu_allocator.cc): a sampling or training
// job keeps the blocks it frees for its next step; nothing else does, so a checkpoint's tensors
// freed after loading cannot fill the cache before a sample begins; the last job's end empties it.
import * as assert from 'assert';
import * as path from 'path';
import { GaussianDiffusion, jit, Tensor, torch } from '../lib';
import { FIXTURES } from './helpers';

describe('CPU cache of large blocks', () => {
  it('keeps blocks only while a job runs: not those freed on the JS thread outside one; emptied when the job ends', async () => {
    torch.emptyCache();
    const big = torch.randn([1024, 1024]);
    big.dispose();
    const outside = torch.cpuCache();
    const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
    const d = new GaussianDiffusion(toy, { imageSize: 64, channels: 3, timesteps: 6 });
    const during: number[] = [];
    // Read from a JS condFn, which the job waits for within each step: an onProgress callback is
    // posted without waiting, so it can run after the job has ended and emptied the cache.
    const img = await d.sample({
      batchSize: 8,
      condFn: (x: Tensor) => {
        during.push(torch.cpuCache().bytes);
        return torch.zerosLike(x);
      },
    });
    img.dispose();
    toy.dispose();
    const after = torch.cpuCache();
    console.log(`      a 4 MiB tensor freed outside a job: ${outside.bytes} bytes cached; during a sample of 8 x 3 x 64 x 64: ${during.map((b) => (b / 2 ** 20).toFixed(1)).join(', ')} MiB; after it: ${after.bytes}; limit ${(after.limit / 2 ** 30).toFixed(1)} GiB`);
    assert.deepStrictEqual({ bytes: outside.bytes, blocks: outside.blocks }, { bytes: 0, blocks: 0 });
    assert.strictEqual(during.length, 6);
    assert.ok(during.slice(1).every((b) => b > 0), during.join(', '));
    assert.deepStrictEqual({ bytes: after.bytes, blocks: after.blocks }, { bytes: 0, blocks: 0 });
  });
});
