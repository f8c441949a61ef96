// A job thread (sample, training) must be the only OpenMP team: when the JS thread keeps the
// worker pool of its last parallel region, libgomp sees more threads than CPUs and throttles
// every team's spin-wait, and 2 intra-op threads ran a sample at 1.4 cores (native/js/openmp_pool.h).
// The check counts the process's threads (/proc/self/task) in a child with 2 intra-op threads:
// the JS thread's pool holds 1 worker after a parallel op; a job adds its own thread and 1
// worker and releases the JS thread's, so a running job is +1, not +2, and the end of it is -1.
// The job thread joins its workers before it ends (js_job.cc): left to libgomp's thread-exit
// destructor they are detached and were sometimes still listed after the promise settled.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const LIB = path.resolve(__dirname, '..', 'lib');

const SCRIPT = `
  const fs = require('fs');
  const { torch, Unet, GaussianDiffusion, trainDiffusion } = require(${JSON.stringify(LIB)});
  const threads = () => fs.readdirSync('/proc/self/task').length;
  const parallelOp = () => torch.randn([512, 512]).matmul(torch.randn([512, 512])).dispose();
  torch.setNumThreads(2);
  const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 1 });
  (async () => {
    const out = {};
    parallelOp();
    let before = threads();
    await new GaussianDiffusion(unet, { imageSize: 8, timesteps: 10 }).sample({
      batchSize: 2, onProgress: ({ step }) => { if (step === 5) out.sampleDuring = threads() - before; } });
    out.sampleAfter = threads() - before;
    parallelOp();
    before = threads();
    await trainDiffusion(unet, { data: torch.randn([8, 1, 8, 8]), steps: 6, batchSize: 4,
      onProgress: ({ step }) => { if (step === 3) out.trainDuring = threads() - before; } });
    out.trainAfter = threads() - before;
    console.log(JSON.stringify(out));
  })();
`;

describe('OpenMP pools', () => {
  before(function () {
    if (!fs.existsSync('/proc/self/task')) this.skip();
  });

  it('a sample and a training run release the JS thread\'s OpenMP workers: +1 thread while they run (theirs and its worker, less the JS thread\'s), -1 after', () => {
    const env = { ...process.env };
    delete env.OMP_NUM_THREADS;
    const r = spawnSync(process.execPath, ['-e', SCRIPT], { encoding: 'utf8', timeout: 60000, env });
    assert.strictEqual(r.status, 0, r.stderr);
    const counts = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.deepStrictEqual(counts, { sampleDuring: 1, sampleAfter: -1, trainDuring: 1, trainAfter: -1 });
  });
});
