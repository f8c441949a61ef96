// What TrainLoop.runLoop and ClassifierTrainLoop.runLoop share: their common options' checks, and
// the wiring of a native loop's handle (js/openai_loop_job.h) to an AbortSignal and, for pushed
// batches, to an iterable feeding it.
import { checkOptionKeys } from '../option-keys';
import { Tensor } from '../tensor';

/** A batch of pushed batches: images [B, C, H, W] in [-1, 1] and, where the model takes them, labels. */
export interface TrainBatch {
  batch: Tensor;
  y?: Tensor;
}

/** What a native loop's promise resolves with. */
export interface RunLoopResult {
  /** Steps this call took. */
  stepsRun: number;
  /** Steps this loop object has taken, and the step it resumed from. */
  step: number;
  resumeStep: number;
  /** N of each checkpoint written, in order. */
  saved: number[];
}

export interface LoopHandle {
  promise: Promise<RunLoopResult>;
  cancel(): void;
  push?(batch: Tensor, y: Tensor | undefined): Promise<boolean>;
  close?(): void;
}

/** The options both runLoops take. */
export interface LoopOptionsBase {
  /** Steps this call takes at most (their loops have no such limit); default: until the flags end the run, or until aborted. */
  steps?: number;
  /** Default: the flags' log_interval. */
  logInterval?: number;
  /** Default: the flags' save_interval. */
  saveInterval?: number;
  /** Where their save writes its files, made when missing; none: nothing is saved. */
  outDir?: string;
  /** Flip each drawn image left-right with probability 1/2, as their load_data; default true. */
  randomFlip?: boolean;
  /** Their dumpkvs: the logged keys averaged over the steps since the last dump. */
  onLog?: (log: Record<string, number>) => void;
  /** After each save: N of the files' names, and their paths. */
  onSave?: (save: { step: number; files: string[] }) => void;
  /** Aborting ends the run after the current step (with its log and save, without the end save); the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

/** The native loop's settings from runLoop's options, the flags giving the defaults. */
export function loopSettings(options: LoopOptionsBase, flags: { batch_size: number; log_interval: number; save_interval: number }):
  { batchSize: number; steps: number; logInterval: number; saveInterval: number; outDir: string; randomFlip: boolean } {
  if (options.randomFlip !== undefined && typeof options.randomFlip !== 'boolean') throw new TypeError('runLoop: randomFlip must be a boolean');
  return {
    batchSize: flags.batch_size,
    steps: loopInt(options.steps ?? 0, 'steps', 0),
    logInterval: loopInt(options.logInterval ?? flags.log_interval, 'logInterval', 1),
    saveInterval: loopInt(options.saveInterval ?? flags.save_interval, 'saveInterval', 1),
    outDir: loopOutDir(options.outDir),
    randomFlip: options.randomFlip ?? true,
  };
}

/** An integer option of runLoop, >= min. */
export function loopInt(v: unknown, name: string, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new RangeError(`runLoop: ${name} must be an integer >= ${min}; got ${String(v)}`);
  return v;
}

/** outDir as the native loop takes it ('' : nothing saved). */
export function loopOutDir(outDir: unknown): string {
  if (outDir !== undefined && (typeof outDir !== 'string' || outDir === '')) throw new TypeError('runLoop: outDir must be a folder path');
  return (outDir as string | undefined) ?? '';
}

export function abortedError(): Error {
  return Object.assign(new Error('training was aborted'), { name: 'AbortError' });
}

// Feeds batches to the native loop, at most two ahead of it, and closes the queue at the end of
// the iterable; an error (the iterable's, or a bad batch) the caller turns into the run's rejection.
async function pump(batches: Iterable<TrainBatch> | AsyncIterable<TrainBatch>, handle: LoopHandle): Promise<void> {
  const push = handle.push as NonNullable<LoopHandle['push']>;
  const ahead: Promise<boolean>[] = [];
  if (batches === null || typeof batches !== 'object' || !(Symbol.asyncIterator in batches || Symbol.iterator in batches)) {
    throw new TypeError('runLoop: batches must be an iterable or async iterable of { batch, y }');
  }
  let k = 0;
  for await (const b of batches as AsyncIterable<TrainBatch>) {
    if (b === null || typeof b !== 'object' || !(b.batch instanceof Tensor) || (b.y !== undefined && !(b.y instanceof Tensor))) {
      throw new TypeError(`runLoop: batch ${k} of batches is not { batch: Tensor, y?: Tensor }`);
    }
    checkOptionKeys<TrainBatch>(`runLoop: batch ${k} of batches`, b, { batch: true, y: true });
    ahead.push(push(b.batch, b.y));
    k++;
    if (ahead.length >= 2 && !(await ahead.shift())) break;  // the run has ended
  }
  // Only at a normal end: on an error the run is cancelled instead (closing would end it well).
  (handle.close as NonNullable<LoopHandle['close']>)();
}

/**
 * The run's promise: the signal cancels it (the loop ends after its current step and the promise
 * rejects with an AbortError); with batches, they are pushed as the loop takes them, and an error
 * of theirs cancels the run and is what it rejects with.
 */
export function settleLoop(handle: LoopHandle, signal: AbortSignal | undefined, batches?: Iterable<TrainBatch> | AsyncIterable<TrainBatch>): Promise<RunLoopResult> {
  const onAbort = (): void => handle.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let pumpError: { error: unknown } | undefined;
  if (batches !== undefined) {
    pump(batches, handle).catch((error) => {
      pumpError = { error };
      handle.cancel();
    });
  }
  return handle.promise
    .catch((err) => {
      throw pumpError ? pumpError.error : err;
    })
    .finally(() => signal?.removeEventListener('abort', onAbort));
}
