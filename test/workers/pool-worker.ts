// A worker of the pool test: runs the jobs it is sent, reporting each step.
import { parentPort, workerData } from 'worker_threads';
import { PoolJob, runJob } from './pool-jobs';

const port = parentPort!;
port.on('message', (job: PoolJob) => {
  runJob(workerData.dir, job, (step) => port.postMessage({ type: 'step', id: job.id, step }))
    .then((values) => port.postMessage({ type: 'done', id: job.id, values }))
    .catch((err: Error) => port.postMessage({ type: 'failed', id: job.id, message: String(err?.stack ?? err) }));
});
port.postMessage({ type: 'ready' });
