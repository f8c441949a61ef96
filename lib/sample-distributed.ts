// Sampling one batch over the ranks of the default process group. The batch is cut into
// chunks of chunkSize images; each rank samples a contiguous run of chunks, one chunk per
// sample() call, image i drawing its noise from a generator seeded seed + i
// (SampleOptions.seeds); allGather puts the batch back together on every rank.
//
// Why chunks: LibTorch's CPU kernels round differently for different batch sizes (the same
// image sampled in a batch of 5 and of 3 differs by ~1e-6 after 20 ancestral steps), so the
// images are the same bits for any world size, one process included, only when they are
// computed in the same chunks. The default chunk (one per rank) is the fastest but depends
// on the world size.
import { binding } from './binding';
import type { GaussianDiffusion, SampleOptions } from './diffusion';
import * as dist from './distributed';
import * as torch from './torch';
import { Tensor } from './tensor';

export interface DistributedSampleOptions<K> extends Omit<SampleOptions<K>, 'seeds' | 'returnAllTimesteps'> {
  batchSize: number;
  /** Image i's generator is seeded seed + i. Default 0. */
  seed?: number;
  /** Images per sample() call; default ceil(batchSize / worldSize). Fix it for results that do not depend on the world size. */
  chunkSize?: number;
}

/** The images [start, start + count) that `rank` of `world` samples: a contiguous run of whole chunks. */
export function shardOf(batch: number, rank: number, world: number, chunkSize = Math.ceil(batch / world)): { start: number; count: number } {
  const chunksPerRank = Math.ceil(Math.ceil(batch / chunkSize) / world);
  const start = Math.min(batch, rank * chunksPerRank * chunkSize);
  return { start, count: Math.min(chunksPerRank * chunkSize, batch - start) };
}

/**
 * Samples batchSize images split over the ranks (every rank must call it with the same
 * options); resolves on every rank with the whole batch, in image order. A guidanceKwargs.y
 * with one label per image is split with the images, and so are modelKwargs.y and an edit's
 * init and mask with one image per sample. Without a process group this process
 * samples every chunk: with the same chunkSize, the same bits as any number of ranks.
 */
export async function sampleDistributed<K>(diffusion: GaussianDiffusion, options: DistributedSampleOptions<K>): Promise<Tensor> {
  const batch = options?.batchSize;
  if (!Number.isInteger(batch) || batch < 1) throw new TypeError(`sampleDistributed: batchSize must be a positive integer; got ${String(batch)}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw new TypeError(`sampleDistributed: seed must be a non-negative integer; got ${String(seed)}`);
  // Checked on every rank alike before any samples: the last image's seed failed on its rank
  // only, and the others then lost their peer.
  if (seed > Number.MAX_SAFE_INTEGER - (batch - 1)) {
    throw new RangeError(`sampleDistributed: image i is seeded seed + i, so seed + batchSize - 1 must be at most 2^53 - 1; got seed ${seed} with batchSize ${batch}`);
  }
  const grouped = dist.isInitialized();
  const world = grouped ? dist.getWorldSize() : 1;
  const rank = grouped ? dist.getRank() : 0;
  const chunkSize = options.chunkSize ?? Math.ceil(batch / world);
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new TypeError(`sampleDistributed: chunkSize must be a positive integer; got ${String(chunkSize)}`);
  if (grouped) {
    // Before any rank samples: ranks asked for different batches would otherwise sample
    // for minutes and then fail (or, same-sized, gather images of different requests).
    const { channels: c, imageSize: s } = diffusion.options;
    await binding.distAgree('sampleDistributed', ['batchSize', 'seed', 'chunkSize', 'channels', 'imageSize'], [batch, seed, chunkSize, c, s]);
  }
  const { start, count } = shardOf(batch, rank, world, chunkSize);
  const per = shardOf(batch, 0, world, chunkSize).count;
  const { channels, imageSize } = diffusion.options;
  const kwargs = options.guidanceKwargs as unknown as { y?: unknown } | undefined;
  const { chunkSize: _chunk, ...sampleOptions } = options;
  const chunks: Tensor[] = [];
  for (let first = start; first < start + count; first += chunkSize) {
    const n = Math.min(chunkSize, start + count - first);
    const y = kwargs?.y instanceof Tensor && kwargs.y.shape[0] === batch ? kwargs.y.narrow(0, first, n) : kwargs?.y;
    // Per-image tensors go with their images: the model's labels, an edit's images and masks.
    const own = (t: unknown, rank: number): unknown => (t instanceof Tensor && t.ndim === rank && t.shape[0] === batch && batch > 1 ? t.narrow(0, first, n) : t);
    const mk = sampleOptions.modelKwargs;
    chunks.push(await diffusion.sample({
      ...sampleOptions,
      ...(mk?.y !== undefined ? { modelKwargs: { ...mk, y: own(mk.y, 1) as Tensor } } : {}),
      ...(sampleOptions.init !== undefined ? { init: own(sampleOptions.init, 4) as Tensor } : {}),
      ...(sampleOptions.mask !== undefined ? { mask: own(sampleOptions.mask, 4) as Tensor } : {}),
      seed: undefined,
      batchSize: n,
      seeds: Array.from({ length: n }, (_, i) => seed + first + i),
      guidanceKwargs: (kwargs ? { ...kwargs, y } : undefined) as K | undefined,
    }));
  }
  if (!grouped) return torch.cat(chunks);
  // allGather wants the same shape on every rank: each sends `per` rows, the padding of the
  // last ranks is dropped afterwards.
  if (count < per) chunks.push(torch.zeros([per - count, channels, imageSize, imageSize]));
  const parts = await dist.allGather(torch.cat(chunks).contiguous());
  return torch.cat(parts).narrow(0, 0, batch);
}
