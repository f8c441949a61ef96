// The openai TrainLoop's data-parallel case, shared by the ranks (rank.ts, scenario
// 'openai-step') and the single-process reference of test/openai-train-distributed.test.ts:
// a small openai UNetModel with learned sigmas, 2b fixed images, their timesteps, loss weights
// and noise, one runStep on rows [from, from + count).
import { openai, torch } from '../../lib';

export const OPENAI_FLAGS = { image_size: 8, num_channels: 32, num_res_blocks: 1, channel_mult: '1,2', attention_resolutions: '4', learn_sigma: true, diffusion_steps: 50, class_cond: true };
export const OPENAI_TRAIN_FLAGS = { lr: 1e-3, weight_decay: 0.01, ema_rate: '0.9' };

export interface OpenaiStepReport {
  refused?: string;
  log: Record<string, number>;
  params: Record<string, number[]>;
  ema: Record<string, number[]>;
}

function flat(m: Record<string, torch.Tensor>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(m)) out[k] = Array.from(t.reshape(-1).to({ dtype: 'float64' }).data() as Float64Array);
  return out;
}

/**
 * One TrainLoop step of the model made with torch.manualSeed(initSeed) on images [from, from +
 * count) of the 4 fixed ones; distributed: over the default process group.
 */
export function openaiStep(o: { from: number; count: number; initSeed: number; distributed: boolean }): OpenaiStepReport {
  return torch.tidy(() => {
    torch.manualSeed(5);
    const x = torch.rand([4, 3, 8, 8]).mul(2).sub(1);
    const y = torch.randint(0, 10, [4]);
    const t = torch.randint(0, 50, [4]);
    const weights = torch.rand([4]).add(0.5);
    const noise = torch.randn([4, 3, 8, 8]);
    torch.manualSeed(o.initSeed);
    const model = openai.createModel(OPENAI_FLAGS);
    const loop = new openai.TrainLoop(openai.createGaussianDiffusion(model, OPENAI_FLAGS), { ...OPENAI_TRAIN_FLAGS, distributed: o.distributed });
    const rows = (v: torch.Tensor): torch.Tensor => v.narrow(0, o.from, o.count);
    const log = loop.runStep(rows(x), { y: rows(y), t: rows(t), weights: rows(weights), noise: rows(noise) });
    const report = { log, params: flat(model.namedParameters()), ema: flat(loop.emaParameters(0)) };
    model.dispose();
    return report;
  });
}

/** The error of a data-parallel TrainLoop with the loss-second-moment sampler (refused). */
export function openaiRefusal(): string {
  const model = openai.createModel(OPENAI_FLAGS);
  try {
    new openai.TrainLoop(openai.createGaussianDiffusion(model, OPENAI_FLAGS), { schedule_sampler: 'loss-second-moment', distributed: true });
    return 'no error';
  } catch (err) {
    return (err as Error).message;
  } finally {
    model.dispose();
  }
}

// The ClassifierTrainLoop's data-parallel case: a small EncoderUNetModel, 4 fixed images,
// labels, timesteps and noise, one noised runStep on rows [from, from + count).
export const CLASSIFIER_FLAGS = { image_size: 8, classifier_channel_mult: '1,2', classifier_width: 64, classifier_depth: 1, classifier_attention_resolutions: '1', classifier_pool: 'adaptive', classifier_use_scale_shift_norm: true };
export const CLASSIFIER_TRAIN_FLAGS = { lr: 1e-3, weight_decay: 0.05 };

export interface ClassifierStepReport {
  log: Record<string, number>;
  params: Record<string, number[]>;
}

/** One ClassifierTrainLoop step of the classifier made with torch.manualSeed(initSeed) on images [from, from + count) of 4. */
export function openaiClassifierStep(o: { from: number; count: number; initSeed: number; distributed: boolean }): ClassifierStepReport {
  return torch.tidy(() => {
    torch.manualSeed(6);
    const x = torch.rand([4, 3, 8, 8]).mul(2).sub(1);
    const y = torch.randint(0, 10, [4]);
    const t = torch.randint(0, 50, [4]);
    const noise = torch.randn([4, 3, 8, 8]);
    torch.manualSeed(o.initSeed);
    const classifier = openai.createClassifier(CLASSIFIER_FLAGS);
    // Every weight drawn (their zero_module leaves the residual blocks' last convs 0, whose
    // gradients then cancel down to rounding, which AdamW's first step scales up to lr).
    const drawn: Record<string, torch.Tensor> = {};
    for (const [name, p] of Object.entries(classifier.namedParameters())) drawn[name] = torch.randn(p.shape).mul(0.1);
    classifier.loadStateDict(drawn);
    const loop = new openai.ClassifierTrainLoop(classifier, { diffusion_steps: 50 }, { ...CLASSIFIER_TRAIN_FLAGS, distributed: o.distributed });
    const rows = (v: torch.Tensor): torch.Tensor => v.narrow(0, o.from, o.count);
    const log = loop.runStep(rows(x), rows(y), { t: rows(t), noise: rows(noise) });
    const report = { log, params: flat(classifier.namedParameters()) };
    classifier.dispose();
    return report;
  });
}
