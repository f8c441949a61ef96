// openai's schedule samplers (resample.py): which timesteps a training batch draws and the
// weight of each loss. One native object keeps the loss history (native/diffusion/schedule_sampler.h).
import { binding, NativeScheduleSampler } from './binding';
import { GaussianDiffusion } from './diffusion';
import { checkOptionKeys } from './option-keys';
import { Tensor } from './tensor';

/** Their create_named_schedule_sampler names. */
export type ScheduleSamplerName = 'uniform' | 'loss-second-moment';

export interface ScheduleSamplerOptions {
  /** Losses kept per timestep (their history_per_term); default 10. */
  historyPerTerm?: number;
  /** Share of the uniform distribution mixed into the weights; default 0.001. */
  uniformProb?: number;
}

export class ScheduleSampler {
  readonly name: ScheduleSamplerName;
  private readonly native: NativeScheduleSampler;

  /**
   * A sampler over the diffusion's (respaced) steps, or over `timesteps` steps. 'uniform' draws
   * every t alike (weights 1); 'loss-second-moment' draws t with probability ~ sqrt(mean of its
   * last historyPerTerm squared losses), once every t has that many, and uniformly before.
   */
  constructor(name: ScheduleSamplerName, diffusion: GaussianDiffusion | number, options: ScheduleSamplerOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('ScheduleSampler: expected an options object such as { historyPerTerm: 10 }');
    checkOptionKeys<ScheduleSamplerOptions>('ScheduleSampler', options, { historyPerTerm: true, uniformProb: true });
    const timesteps = diffusion instanceof GaussianDiffusion ? diffusion.numTimesteps : diffusion;
    this.name = name;
    this.native = new binding.NativeScheduleSampler(name, timesteps, options.historyPerTerm ?? 10, options.uniformProb ?? 0.001);
  }

  /** The unnormalised weights over the timesteps (their weights()). */
  weights(): Float64Array {
    return this.native.weights();
  }

  /** Records one loss per timestep drawn (their update_with_all_losses); uniform ignores them. */
  updateWithAllLosses(ts: ArrayLike<number>, losses: ArrayLike<number>): void {
    this.native.update(Array.from(ts), Array.from(losses));
  }

  /**
   * batchSize timesteps drawn with p = w / sum(w) from a generator seeded with `seed`, and the
   * loss weights 1 / (T p_t) (float32) that keep the objective's mean unchanged.
   */
  sample(batchSize: number, seed: number): { t: Tensor; weights: Tensor } {
    return this.native.sample(batchSize, seed);
  }
}

/** Their create_named_schedule_sampler(name, diffusion). */
export function createNamedScheduleSampler(name: ScheduleSamplerName, diffusion: GaussianDiffusion): ScheduleSampler {
  return new ScheduleSampler(name, diffusion);
}
