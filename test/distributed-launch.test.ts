// `guided-diffusion launch`: starts the ranks with torchrun's variables, and when one rank
// dies mid-training it kills the others and exits non-zero, leaving no process behind.
import * as assert from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { jit, Tensor, torch } from '../lib';
import { launch } from '../lib';
import { freePort, RANK_SCRIPT } from './distributed/ranks';

const CLI = path.resolve(__dirname, '..', 'lib', 'cli.js');

function run(args: string[], limitMs = 60000): Promise<{ code: number | null; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, ms: Date.now() - t0 });
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('guided-diffusion launch', function () {
  this.timeout(90000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-launch-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('starts 3 ranks that form one group (RANK, WORLD_SIZE, MASTER_* set)', async () => {
    const out = fs.mkdtempSync(path.join(tmp, 'ok-'));
    const port = await freePort();
    const r = await run(['launch', '--nproc-per-node', '3', '--master-port', String(port), RANK_SCRIPT, 'collectives', JSON.stringify({ out })]);
    assert.strictEqual(r.code, 0, r.stderr);
    for (let rank = 0; rank < 3; rank++) {
      const res = JSON.parse(fs.readFileSync(path.join(out, `rank-${rank}.json`), 'utf8'));
      assert.strictEqual(res.rank, rank);
      assert.strictEqual(res.world, 3);
      assert.deepStrictEqual(res.sum, [6, 60, -3]);
    }
  });

  it('a rank killed mid-training makes the launcher kill the others and exit non-zero', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'crash-'));
    const port = await freePort();
    const r = await run(['launch', '--nproc-per-node', '2', '--master-port', String(port), RANK_SCRIPT, 'crash-in-training', JSON.stringify({ dir, timeoutMs: 10000 })]);
    assert.strictEqual(r.code, 1, r.stderr);
    assert.match(r.stderr, /guided-diffusion launch: rank 1 was killed by SIGKILL; stopping the other ranks/);
    assert.ok(r.ms < 30000, `the launcher took ${r.ms} ms`);
    const pids = [0, 1].map((rank) => Number(fs.readFileSync(path.join(dir, `pid-${rank}`), 'utf8')));
    for (const pid of pids) assert.strictEqual(alive(pid), false, `rank process ${pid} is still running`);
  });

  it('train --nproc-per-node 2 trains the recipe\'s classifier over 2 ranks; rank 0 alone writes and installs', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'train-'));
    const r = await run(['train', 'classifier', '--steps', '3', '--limit', '64', '--threads', '1', '--out-dir', path.join(dir, 'out'),
      '--cache-dir', path.join(dir, 'cache'), '--nproc-per-node', '2'], 120000);
    assert.strictEqual(r.code, 0, r.stderr);
    // One log (rank 0's), one checkpoint, one installed model.
    assert.strictEqual(r.stderr.match(/classifier step 3\/3 loss /g)?.length, 1, r.stderr);
    assert.deepStrictEqual(fs.readdirSync(path.join(dir, 'cache')).sort(), ['classifier.pt', 'classifier.pt.state']);
    assert.deepStrictEqual(fs.readdirSync(path.join(dir, 'out')).sort(), ['classifier.pt', 'model.json']);
    const logits = jit.load(path.join(dir, 'out', 'classifier.pt')).forward(torch.zeros([1, 1, 32, 32]), torch.tensor([0])) as Tensor;
    assert.deepStrictEqual(logits.shape, [1, 10]);
  });

  it('train refuses --minutes with --nproc-per-node', async () => {
    const r = await run(['train', 'classifier', '--minutes', '1', '--nproc-per-node', '2']);
    assert.strictEqual(r.code, 1);
    assert.match(r.stderr, /--minutes cannot be combined with --nproc-per-node; use --steps/);
  });

  it('rejects a bad rank count or node rank', async () => {
    const r1 = await run(['launch', '--nproc-per-node', '0', RANK_SCRIPT]);
    assert.strictEqual(r1.code, 1);
    assert.match(r1.stderr, /--nproc-per-node must be an integer >= 1/);
    const r2 = await run(['launch', '--nproc-per-node', '1', '--nnodes', '2', '--node-rank', '2', RANK_SCRIPT]);
    assert.strictEqual(r2.code, 1);
    assert.match(r2.stderr, /--node-rank must be below --nnodes \(2\)/);
    // 1,000 ranks aborted and then hung (issue 21 C15): refused up front.
    const r3 = await run(['launch', '--nproc-per-node', '1000', RANK_SCRIPT]);
    assert.strictEqual(r3.code, 1);
    assert.match(r3.stderr, /nprocPerNode must be at most 256: each rank is a whole process with LibTorch loaded/);
    assert.throws(() => launch({ nprocPerNode: 257, script: RANK_SCRIPT }), { name: 'RangeError', message: /^launch: nprocPerNode must be at most 256/ });
  });

  it('a rank that cannot be started settles launch with a failure instead of leaving it pending', async () => {
    // An environment beyond the kernel's limit: spawn() fails (E2BIG) before any rank runs.
    const started = Date.now();
    const r = await launch({ nprocPerNode: 2, script: RANK_SCRIPT, env: { HUGE: 'x'.repeat(4 << 20) }, stdio: 'ignore' });
    assert.deepStrictEqual(r, { exitCode: 1, failed: { rank: 0, code: null, signal: null } });
    assert.ok(Date.now() - started < 5000);
  });
});
