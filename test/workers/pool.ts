// The worker-pool test's process (test/worker-threads.test.ts): 3 workers run 30 guided samples
// and 2 trainings while workers are terminated at random moments (mid-step, mid-condFn, while
// loading) and replaced; a terminated job is run again by another worker. Every result must
// equal the same job run on this thread, and the process must end by itself. Prints a JSON
// summary as its last line.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import { seededRandom } from '../../lib/seeded-random';
import { PoolJob, poolJobs, runJob, writeModels } from './pool-jobs';

const POOL = 3;
const SEED = Number(process.env.GD_POOL_SEED ?? 12345);

interface Slot {
  worker: Worker;
  job: PoolJob | null;
  killAtStep: number; // terminate when the job reports this step; -1: never
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-pool-'));
  writeModels(dir);
  const jobs = poolJobs();

  let started = Date.now();
  const reference = new Map<number, number[]>();
  for (const job of jobs) reference.set(job.id, await runJob(dir, job, () => {}));
  const referenceMs = Date.now() - started;

  started = Date.now();
  // The terminations are reproducible from GD_POOL_SEED.
  const random = seededRandom(SEED);
  const queue = [...jobs];
  const attempts = new Map<number, number>();
  const results = new Map<number, number[]>();
  const failures: string[] = [];
  let terminations = 0;
  let terminatedMidJob = 0;
  let workersStarted = 0;

  await new Promise<void>((resolve) => {
    const slots: Slot[] = [];
    // Idle workers end with the pool.
    const finishIfDone = (): void => {
      if (results.size + failures.length < jobs.length) return;
      for (const s of slots) void s.worker.terminate();
      resolve();
    };
    const kill = (slot: Slot): void => {
      terminations++;
      if (slot.job) {
        terminatedMidJob++;
        queue.push(slot.job);
      }
      const old = slot.worker;
      slot.job = null;
      void old.terminate();
      start(slot);
    };
    const assign = (slot: Slot): void => {
      const job = queue.shift();
      if (!job) return;
      const attempt = (attempts.get(job.id) ?? 0) + 1;
      attempts.set(job.id, attempt);
      slot.job = job;
      // First attempts: trainings always, samples 40% of the time, die at a random step.
      slot.killAtStep = attempt === 1 && (job.kind === 'train' || random() < 0.4) ? 1 + Math.floor(random() * 5) : -1;
      slot.worker.postMessage(job);
      // Now and then a worker dies before it reports any step (loading models, first call).
      if (attempt === 1 && random() < 0.1) setTimeout(() => { if (slot.job === job) kill(slot); }, Math.floor(random() * 50));
    };
    const start = (slot: Slot): void => {
      workersStarted++;
      const worker = new Worker(path.join(__dirname, 'pool-worker.js'), { workerData: { dir } });
      slot.worker = worker;
      worker.on('message', (m: { type: string; id: number; step: number; values: number[]; message: string }) => {
        if (slot.worker !== worker) return;
        if (m.type === 'ready') assign(slot);
        else if (m.type === 'step' && slot.job?.id === m.id && m.step === slot.killAtStep) kill(slot);
        else if (m.type === 'done' && slot.job?.id === m.id) {
          results.set(m.id, m.values);
          slot.job = null;
          finishIfDone();
          assign(slot);
        } else if (m.type === 'failed') {
          failures.push(`job ${m.id}: ${m.message}`);
          slot.job = null;
          finishIfDone();
          assign(slot);
        }
      });
      worker.on('error', (err) => {
        failures.push(`worker error: ${err.stack ?? err}`);
        finishIfDone();
      });
    };
    for (let i = 0; i < POOL; i++) {
      const slot: Slot = { worker: null as unknown as Worker, job: null, killAtStep: -1 };
      slots.push(slot);
      start(slot);
    }
  });
  const poolMs = Date.now() - started;

  let maxDiff = 0;
  let compared = 0;
  for (const [id, values] of results) {
    const ref = reference.get(id)!;
    if (ref.length !== values.length) failures.push(`job ${id}: ${values.length} values, expected ${ref.length}`);
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i] - values[i]));
    compared++;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ seed: SEED, jobs: jobs.length, compared, terminations, terminatedMidJob, workersStarted, maxDiff, failures, referenceMs, poolMs }));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
