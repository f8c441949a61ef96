// Sampling one batch over the ranks of the default process group: image i draws its noise
// from a generator seeded seed + i (SampleOptions.seeds), rank r samples a contiguous slice
// of the images, and allGather puts the batch back together, so the result equals
// diffusion.sample({ seeds }) in one process, whatever the world size.
import type { GaussianDiffusion, SampleOptions } from './diffusion';
import * as dist from './distributed';
import * as torch from './torch';
import { Tensor } from './tensor';

export interface DistributedSampleOptions<K> extends Omit<SampleOptions<K>, 'seeds' | 'returnAllTimesteps'> {
  batchSize: number;
  /** Image i's generator is seeded seed + i. Default 0. */
  seed?: number;
}

/** The images [start, start + count) that `rank` of `world` samples from a batch of `batch`. */
export function shardOf(batch: number, rank: number, world: number): { start: number; count: number } {
  const per = Math.ceil(batch / world);
  const start = Math.min(batch, rank * per);
  return { start, count: Math.min(per, batch - start) };
}

/**
 * Samples batchSize images split over the ranks (every rank must call it with the same
 * options); resolves on every rank with the whole batch, in image order. A guidanceKwargs.y
 * with one label per image is split with the images. Without a process group it samples
 * the whole batch here.
 */
export async function sampleDistributed<K>(diffusion: GaussianDiffusion, options: DistributedSampleOptions<K>): Promise<Tensor> {
  const batch = options?.batchSize;
  if (!Number.isInteger(batch) || batch < 1) throw new TypeError(`sampleDistributed: batchSize must be a positive integer; got ${String(batch)}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw new TypeError(`sampleDistributed: seed must be a non-negative integer; got ${String(seed)}`);
  const grouped = dist.isInitialized();
  const world = grouped ? dist.getWorldSize() : 1;
  const rank = grouped ? dist.getRank() : 0;
  const { start, count } = shardOf(batch, rank, world);
  const per = Math.ceil(batch / world);
  const { channels, imageSize } = diffusion.options;
  // allGather wants the same shape on every rank: each sends `per` rows, the last ranks'
  // padding is dropped afterwards.
  let mine = torch.zeros([per, channels, imageSize, imageSize]);
  if (count > 0) {
    const kwargs = options.guidanceKwargs as unknown as { y?: unknown } | undefined;
    const y = kwargs?.y instanceof Tensor && kwargs.y.shape[0] === batch ? kwargs.y.narrow(0, start, count) : kwargs?.y;
    const images = await diffusion.sample({
      ...options,
      seed: undefined,
      batchSize: count,
      seeds: Array.from({ length: count }, (_, i) => seed + start + i),
      guidanceKwargs: (kwargs ? { ...kwargs, y } : undefined) as K | undefined,
    });
    mine = count === per ? images : torch.cat([images, torch.zeros([per - count, channels, imageSize, imageSize])]);
  }
  if (!grouped) return mine;
  const parts = await dist.allGather(mine.contiguous());
  return torch.cat(parts).narrow(0, 0, batch);
}
