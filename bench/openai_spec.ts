// What bench/openai_nets.ts asks of its children (openai_worker.ts, openai_python.py).
export interface OpenAISpec {
  /** A checkout of openai/guided-diffusion (Python imports guided_diffusion from it). */
  repo: string;
  /** Their MODEL_FLAGS as script_util's keyword arguments (use_fp16 False: float32). */
  modelFlags: Record<string, string | number | boolean>;
  /** Their CLASSIFIER_FLAGS (classifier_*, image_size). */
  classifierFlags: Record<string, string | number | boolean>;
  files: {
    /** th.save'd state dicts written by their code (openai_python.py prepare). */
    model: string;
    classifier: string;
    /** Our nets with those weights as TorchScript (openai_worker.js save), for the profile. */
    oursModel: string;
    oursClassifier: string;
  };
  batch: number;
  threads: number;
  /** Timed guided DDIM steps, after warmupSteps untimed ones in the same sample. */
  steps: number;
  warmupSteps: number;
  classifierScale: number;
  seed: number;
  /** The UNet's forward under CPU autocast in this dtype (both sides); null: float32. */
  autocast: 'bfloat16' | null;
  /** Python side: also count one step's FLOPs and a matmul peak. */
  flops?: boolean;
  /** Where both sides sample; default 'cpu'. On 'cuda' use_fp16 is as theirs: their convert_to_fp16, our float16 torso. */
  device?: 'cpu' | 'cuda';
  /** Ours on CUDA: GaussianDiffusionOptions.cudaGraph. */
  cudaGraph?: boolean;
  /**
   * Set (bench/cuda/openai_nets.ts): whole samples of `steps` steps are timed, this many after one
   * untimed, each ending in a copy to the host on both sides. Unset: steps within one sample.
   */
  runs?: number;
}

export interface OpenAIResult {
  side: 'ours' | 'python';
  msPerStep: number[];
  cpuMsPerStep: number;
  faultsPerStep: number;
  warmupMs: number;
  rssStartKiB: number;
  rssPeakKiB: number;
  threads: number;
  cpuMs: number;
  /** GFLOP/s on the Python child's threads: a 2048x2048 matmul (peak), a 3x3 and a 1x1 convolution. */
  flops?: { unetFlops: number; guidanceFlops: number; peakGflops: number; conv3x3Gflops: number; conv1x1Gflops: number; conv1x1OnednnGflops: number };
  /** Ours on CUDA: the sampler's graph captures and replays (torch.cuda.graphStats()). */
  cudaGraphs?: { supported: boolean; captures: number; replays: number };
  /** Python on CUDA: torch.cuda.max_memory_allocated, bytes. */
  cudaPeakBytes?: number;
}

export interface OpenAIProfile {
  /** Per side: the ops by self time of one UNet forward and one guidance gradient. */
  sides: { side: string; totalMs: number; ops: { op: string; selfMs: number; calls: number }[] }[];
  cpuMs: number;
}
