// What bench/openai_train.ts asks of its children (openai_train_worker.ts, openai_train_python.py).
export interface OpenAITrainSpec {
  /** A checkout of openai/guided-diffusion (Python imports guided_diffusion from it). */
  repo: string;
  /** Their MODEL_FLAGS and DIFFUSION_FLAGS as script_util's keyword arguments (use_fp16 False). */
  modelFlags: Record<string, string | number | boolean>;
  /** Their TrainLoop's flags: lr, weight_decay, batch_size, microbatch, ema_rate. */
  trainFlags: { lr: number; weight_decay: number; batch_size: number; microbatch: number; ema_rate: string };
  files: {
    /** th.save'd state dict written by their code (openai_train_python.py prepare). */
    model: string;
    /** th.save'd {batch0, y0, batch1, y1, ...}: one batch per step, the same for both sides. */
    data: string;
  };
  threads: number;
  /** Timed steps, after warmupSteps untimed ones on the same TrainLoop. */
  steps: number;
  warmupSteps: number;
  seed: number;
}

export interface OpenAITrainResult {
  side: 'ours' | 'python';
  /** Wall ms of each timed step. */
  msPerStep: number[];
  /** CPU ms (all threads of the process) per timed step. */
  cpuMsPerStep: number;
  faultsPerStep: number;
  /** The losses their logger got in the timed steps (a sanity check that both trained). */
  losses: number[];
  rssPeakKiB: number;
  threads: number;
  cpuMs: number;
  /** prepare only: Python's torch.__version__. */
  torch?: string;
}
