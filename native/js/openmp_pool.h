// OpenMP (libgomp) keeps, for every thread that has run a parallel region, a pool of worker
// threads that outlives the region. Once the JS thread has such a pool and a job thread (a
// sample, a training run) starts its own team, libgomp counts more threads than CPUs and cuts
// every team's spin-wait to ~100 spins: between a Unet's many small parallel regions the job's
// workers fall asleep and are woken by futex. On 2 cores the job then ran at 1.4 cores, a
// Unet forward at 83 ms instead of the 51 ms of the same call from the JS thread. Releasing the
// JS thread's pool when a job starts and after each condFn call, and the job thread's pool
// before it hands a slow condFn call (a classifier gradient) to the JS thread, leaves one team
// at a time.
#pragma once

namespace gd::js {

// Frees the calling thread's OpenMP worker pool (OpenMP 5.0 omp_pause_resource_all, soft); a
// no-op when the OpenMP runtime LibTorch uses lacks it or the thread has no pool. The next
// parallel region of this thread starts a new pool.
void ReleaseOpenMpPool();

}  // namespace gd::js
