// torch.distributed over Gloo between real processes on loopback: collective values on 2 and
// 3 ranks, the errors of misuse, and faults (a peer that dies, hangs or never comes) that
// must end in a clear error within the timeout, never a hang.
import * as assert from 'assert';
import { torch, trainDiffusion, Unet } from '../lib';
import { runRanks } from './distributed/ranks';

const dist = torch.distributed;

interface Collectives {
  rank: number; world: number; second: string; sum: number[]; avg: number[]; max: number[]; prod: number[];
  b: number[][]; gathered: number[][]; many: number[][]; badOp: string; badSrc: string; hugeSrc: string; afterDestroy: string;
}

describe('torch.distributed (gloo, loopback)', function () {
  this.timeout(90000);

  it('this build has the gloo backend', () => {
    assert.ok(dist.availableBackends().includes('gloo'), `backends: ${dist.availableBackends()}`);
  });

  for (const n of [2, 3]) {
    it(`allReduce, broadcast, allGather and barrier on ${n} ranks give the reduced values`, async () => {
      const out = await runRanks<Collectives>(n, 'collectives');
      const triangle = (n * (n - 1)) / 2;
      const prod = Array.from({ length: n }, (_, r) => r + 2).reduce((a, b) => a * b);
      for (const o of out) {
        assert.strictEqual(o.code, 0, o.stderr);
        const r = o.result!;
        assert.strictEqual(r.rank, o.rank);
        assert.strictEqual(r.world, n);
        assert.deepStrictEqual(r.sum, [n + triangle, 10 * (n + triangle), -triangle]);
        assert.deepStrictEqual(r.avg, [(n + triangle) / n, 2]);
        assert.deepStrictEqual(r.max, [n - 1, 0]);
        assert.deepStrictEqual(r.prod, [prod]);
        assert.deepStrictEqual(r.b, [[(n - 1) * 100 + 5, (n - 1) * 100 + 5], [(n - 1) * 100 + 5, (n - 1) * 100 + 5]]);
        assert.deepStrictEqual(r.gathered, Array.from({ length: n }, (_, k) => [k, k * k]));
        assert.deepStrictEqual(r.many, Array.from({ length: 5 }, (_, i) => Array(3).fill(n * i + triangle)));
        assert.strictEqual(r.second, `initProcessGroup: the default process group is already initialized (rank ${o.rank} of ${n}); call destroyProcessGroup() first`);
        assert.strictEqual(r.badOp, "op must be one of 'sum', 'avg', 'product', 'min', 'max'; got 'mean'");
        assert.strictEqual(r.badSrc, `broadcast: src must be a rank in [0, ${n - 1}]; got ${n}`);
        assert.strictEqual(r.hugeSrc, `broadcast: src must be a rank in [0, ${n - 1}]; got 4294967296`);
        assert.strictEqual(r.afterDestroy, 'getRank: the default process group is not initialized; call initProcessGroup() first');
      }
    });
  }

  it('a peer that dies makes the next collective fail at once', async () => {
    const [r0, r1] = await runRanks<{ error: string; ms: number }>(2, 'peer-dies', { timeoutMs: 20000 });
    assert.strictEqual(r1.code, 3);
    assert.strictEqual(r0.code, 0, r0.stderr);
    assert.match(r0.result!.error, /^allReduce \(gloo\) failed: /);
    assert.ok(r0.result!.ms < 20000, `failed after ${r0.result!.ms} ms`);
  });

  it('a peer killed mid-training makes the other rank\'s training reject', async () => {
    const [r0, r1] = await runRanks<{ error: string; ms: number }>(2, 'train-peer-dies', { timeoutMs: 20000 });
    assert.strictEqual(r1.code, null);  // killed
    assert.strictEqual(r0.code, 0, r0.stderr);
    assert.match(r0.result!.error, /^allReduce \(gloo\) failed: /);
    assert.ok(r0.result!.ms < 20000, `rejected after ${r0.result!.ms} ms`);
  });

  it('a peer that hangs makes the collective fail after timeoutMs', async () => {
    const [r0, r1] = await runRanks<{ error: string; ms: number }>(2, 'peer-hangs', { timeoutMs: 2000 });
    assert.strictEqual(r0.code, 0, r0.stderr);
    assert.strictEqual(r1.code, 0, r1.stderr);
    assert.match(r0.result!.error, /^allReduce \(gloo\) failed: /);
    assert.ok(r0.result!.ms >= 1500 && r0.result!.ms < 8000, `failed after ${r0.result!.ms} ms`);
  });

  it('a rendezvous nobody else comes to fails after timeoutMs', async () => {
    const [r0] = await runRanks<{ error: string; ms: number; initialized: boolean }>(1, 'alone', { timeoutMs: 1500 }, { worldSize: 2 });
    assert.strictEqual(r0.code, 0, r0.stderr);
    assert.match(r0.result!.error, /^initProcessGroup: rank 0 could not meet its 1 peers at 127\.0\.0\.1:\d+ within 1500 ms: /);
    assert.ok(r0.result!.ms >= 1000 && r0.result!.ms < 10000, `failed after ${r0.result!.ms} ms`);
    assert.strictEqual(r0.result!.initialized, false);
  });

  it('ranks that disagree get an error naming both ranks\' collectives, and the group stays usable', async function () {
    this.timeout(180000);
    const out = await runRanks<Record<string, string | number[] | number>>(2, 'mismatches', {}, { limitMs: 170000 });
    const tail = '; nothing was sent. Every rank must make the same collectives, in the same order, with the same shapes and dtypes';
    const mismatch = (what: string, a: string, b: string) => `${what}: the ranks' collectives do not match (rank 0 calls ${a}, rank 1 calls ${b})${tail}`;
    for (const o of out) {
      assert.strictEqual(o.code, 0, o.stderr);  // not SIGABRT
      const r = o.result!;
      console.log(`      rank ${o.rank}: ${r.shape}`);
      assert.strictEqual(r.shape, mismatch('allReduce', "allReduce('sum') of float32 [2]", "allReduce('sum') of float32 [3]"));
      assert.strictEqual(r.dtype, mismatch('allReduce', "allReduce('sum') of float32 [2]", "allReduce('sum') of int32 [2]"));
      assert.strictEqual(r.op, mismatch('allReduce', "allReduce('sum') of float32 [2]", "allReduce('max') of float32 [2]"));
      assert.strictEqual(r.broadcastSize, mismatch('broadcast', 'broadcast from rank 0 of float32 [2]', 'broadcast from rank 0 of float32 [100]'));
      assert.strictEqual(r.broadcastSrc, mismatch('broadcast', 'broadcast from rank 0 of float32 [2]', 'broadcast from rank 1 of float32 [2]'));
      assert.strictEqual(r.gather, mismatch('allGather', 'allGather of float32 [2]', 'allGather of float32 [5]'));
      // Each rank names its own call first as it is rank 0's or rank 1's.
      assert.strictEqual(r.kind, mismatch(o.rank === 0 ? 'barrier' : 'allReduce', 'barrier', "allReduce('sum') of float32 [1]"));
      assert.deepStrictEqual(r.after, [3]);
      assert.match(r.trainModel as string, /^train with distributed: true: the ranks' collectives do not match \(tensor 0 of \d+: float32 \[8, 1, 7, 7\] on rank 0, float32 \[16, 1, 7, 7\] on rank 1\)/);
      assert.match(r.trainBatch as string, /^train with distributed: true: the ranks' collectives do not match \(batchSize: 2 on rank 0, 4 on rank 1\)/);
      assert.match(r.sample as string, /^sampleDistributed: the ranks' collectives do not match \(batchSize: 4 on rank 0, 6 on rank 1\)/);
      console.log(`      rank ${o.rank}: sampleDistributed refused after ${r.sampleMs} ms`);
      assert.ok((r.sampleMs as number) < 5000, `sampleDistributed refused after ${r.sampleMs} ms`);
    }
  });

  it('destroyProcessGroup returns at once and fails the collective still pending', async () => {
    const [r0, r1] = await runRanks<{ destroyMs: number; error: string; settledMs: number; afterwards: string }>(2, 'destroy-pending', { timeoutMs: 6000 });
    assert.strictEqual(r0.code, 0, r0.stderr);
    assert.strictEqual(r1.code, 0, r1.stderr);
    const r = r0.result!;
    console.log(`      destroy took ${r.destroyMs} ms; the pending allReduce rejected after ${r.settledMs} ms`);
    assert.ok(r.destroyMs < 1000, `destroyProcessGroup took ${r.destroyMs} ms`);
    assert.ok(r.settledMs < 2000, `the pending collective settled after ${r.settledMs} ms`);
    assert.strictEqual(r.error, 'allReduce (gloo) failed: the process group was destroyed while it was pending');
    assert.strictEqual(r.afterwards, 'allReduce: the default process group is not initialized; call initProcessGroup() first');
  });

  it('a master that accepts the connection but never answers fails after timeoutMs, and the process exits', async () => {
    const t0 = Date.now();
    const [r] = await runRanks<{ error: string; ms: number; port: number; initialized: boolean }>(1, 'no-answer', { timeoutMs: 1500 }, { limitMs: 30000 });
    const total = Date.now() - t0;
    assert.strictEqual(r.code, 0, r.stderr);  // not killed at limitMs: exit did not hang
    assert.strictEqual(r.result!.error, `initProcessGroup: rank 1 could not meet its 1 peers at 127.0.0.1:${r.result!.port} within 1500 ms: ` +
      'the master accepted the connection but did not answer (is rank 0 stopped, or another program listening on that port?)');
    console.log(`      rejected after ${r.result!.ms} ms; the process was gone after ${total} ms`);
    assert.ok(r.result!.ms >= 1500 && r.result!.ms < 5000, `rejected after ${r.result!.ms} ms`);
    assert.strictEqual(r.result!.initialized, false);
  });

  describe('without a process group', () => {
    it('getRank, collectives and distributed training say that none is initialized', async () => {
      assert.strictEqual(dist.isInitialized(), false);
      assert.throws(() => dist.getRank(), { message: 'getRank: the default process group is not initialized; call initProcessGroup() first' });
      assert.throws(() => dist.getWorldSize(), /getWorldSize: the default process group is not initialized/);
      await assert.rejects(dist.allReduce(torch.ones([2])), { message: 'allReduce: the default process group is not initialized; call initProcessGroup() first' });
      await assert.rejects(dist.barrier(), /barrier: the default process group is not initialized/);
      const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 1 });
      await assert.rejects(trainDiffusion(unet, { data: torch.zeros([2, 1, 8, 8]), steps: 1, distributed: true }),
        { message: 'train with distributed: true: the default process group is not initialized; call initProcessGroup() first' });
    });

    it('initProcessGroup names what is missing or wrong', async () => {
      const saved = { ...process.env };
      try {
        for (const k of ['MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE']) delete process.env[k];
        await assert.rejects(dist.initProcessGroup(), { name: 'TypeError', message: 'initProcessGroup: env:// needs MASTER_ADDR in the environment' });
        process.env.MASTER_ADDR = '127.0.0.1';
        process.env.MASTER_PORT = 'x1';
        await assert.rejects(dist.initProcessGroup(), { name: 'RangeError', message: "initProcessGroup: environment variable MASTER_PORT must be a non-negative integer; got 'x1'" });
        await assert.rejects(dist.initProcessGroup({ initMethod: 'tcp://127.0.0.1:29500', rank: 0 }), { message: 'initProcessGroup: options.worldSize (tcp://) is not set' });
        await assert.rejects(dist.initProcessGroup({ initMethod: 'file:///tmp/x', rank: 0, worldSize: 1 }), { message: "initProcessGroup: initMethod must be 'env://' or 'tcp://host:port'; got 'file:///tmp/x'" });
        await assert.rejects(dist.initProcessGroup({ backend: 'mpi' as never }), { message: "initProcessGroup: backend must be 'gloo' or 'nccl'; got 'mpi'" });
        await assert.rejects(dist.initProcessGroup({ initMethod: 'tcp://127.0.0.1:29500', rank: 2, worldSize: 2 }), { name: 'RangeError', message: 'rank must be in [0, 1]; got 2' });
        if (!dist.availableBackends().includes('nccl')) {
          await assert.rejects(dist.initProcessGroup({ backend: 'nccl', initMethod: 'tcp://127.0.0.1:29500', rank: 0, worldSize: 1 }),
            { message: "backend 'nccl' needs a CUDA build of the addon with NCCL; this one has none (use 'gloo')" });
        }
        assert.strictEqual(dist.isInitialized(), false);
      } finally {
        process.env = saved;
      }
    });
  });
});
