// What the bench parent asks of a sampling child (ours: worker.ts, theirs: python_sampler.py)
// and what the child answers. Both sides read the same JSON, so the field names are plain.
import type { ClassifierOptions, UnetOptions } from '../lib';

/** none; native classifierGuidance; classifierCondFn in JS; a JS condFn that returns zeros (the hop alone). */
export type GuidanceKind = 'none' | 'native' | 'js' | 'js-zero';

export interface ModelFiles {
  /** TorchScript checkpoint written by our save(); Python loads it with torch.jit.load. */
  unetPt: string;
  /** The same weights as safetensors; our side builds the native Unet and loads them. */
  unetSafetensors: string;
  classifierPt?: string;
  classifierSafetensors?: string;
}

export interface SampleSpec {
  unet: UnetOptions;
  classifier?: ClassifierOptions;
  files: ModelFiles;
  imageSize: number;
  channels: number;
  timesteps: number;
  /** Equal to timesteps: ancestral steps (condition_mean); fewer: DDIM (condition_score). */
  samplingTimesteps: number;
  batch: number;
  seed: number;
  threads: number;
  guidance: GuidanceKind;
  classifierScale: number;
  /** Target class per sample (length batch). */
  y: number[];
  /** An untimed sample of this many steps first: the TorchScript executor profiles, then optimizes. */
  warmupSteps: number;
  /** Timed samples in this process. */
  runs: number;
  /** Where the first timed sample is written (raw float32), to check both sides agree. */
  outPath?: string;
  /** Also time one model call and one guidance call on their own (where the time goes). */
  breakdown?: boolean;
  /** Where both sides sample; default 'cpu'. */
  device?: 'cpu' | 'cuda';
  /** CUDA: the Unet's forward under autocast in this dtype (both sides). */
  autocast?: 'float16' | 'bfloat16';
  /** CUDA, our side: replay the Unet call from a CUDA graph (GaussianDiffusion's default there). */
  cudaGraph?: boolean;
  /** Python's Unet: 'eager' (default), docs/reference-unet.md as plain PyTorch ops, as the
   * reference runs; or 'script', our TorchScript file loaded with torch.jit.load. */
  pythonUnet?: 'eager' | 'script';
  /** Python only: sample on a threading.Thread, not the main thread (ours samples on a thread). */
  pythonThread?: boolean;
  /** Python only: count one step's FLOPs and time the matmul peak, sample nothing (for rows that time ours alone). */
  flopsOnly?: boolean;
}

/** What one step cannot beat, measured by the Python child: FLOPs (torch.utils.flop_counter) over a matmul peak. */
export interface FlopCount {
  /** One Unet forward. */
  unetFlops: number;
  /** One guidance gradient: the classifier's forward and the backward to x (0 unguided). */
  guidanceFlops: number;
  /** GFLOP/s of a large float32 torch.mm in the same process and threads... */
  peakGflops: number;
  /** ...and which. */
  peakOp: string;
  /** Under autocast: the Unet's FLOPs are held against the peak of a matmul in that dtype. */
  unetPeakGflops?: number;
  unetPeakOp?: string;
}

export interface SampleResult {
  side: 'ours' | 'python';
  steps: number;
  /** Wall time of each timed sample. */
  timesMs: number[];
  /** The untimed first (warm-up) sample, for what a cold call costs. */
  warmupMs: number;
  /** Process CPU time (all threads) during the timed samples: / wall = cores used. */
  runCpuMs: number;
  /** Minor page faults of the process during the timed samples. */
  runMinorFaults: number;
  /** Process CPU time over the whole child (for the parent's external-load estimate). */
  cpuMs: number;
  /** Resident set high-water mark after loading torch, before any model (KiB). */
  rssStartKiB: number;
  /** Resident set high-water mark at the end (KiB). */
  rssPeakKiB: number;
  /** Median ms of one model forward (no grad) and one guidance gradient, called directly. */
  breakdown?: { modelMs: number; condFnMs: number };
  /** Python only: time inside the sampling loop per step, split by part (ms). */
  split?: { modelMs: number; guidanceMs: number; otherMs: number };
  /** Python only: the step's FLOPs and this process's matmul peak. */
  flops?: FlopCount;
  threads: number;
}
