// The demo's wall time (`npm run demo`: 16 guided sneakers of the shipped model, the whole
// command: node start-up, model load, sampling, PNG) with the shipped model's default sampler
// against the same command with --sampler ancestral (1,000 steps, the default before the fast
// samplers). Writes bench/DEMO.md.
//
//   node dist/bench/demo.js [--runs 3] [--ancestral-runs 1]
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Command } from 'commander';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'lib', 'cli.js');
const DEMO = ['sample', '--class', 'sneaker', '--n', '16', '--seed', '1'];

function timeRuns(extra: string[], runs: number, out: string): { seconds: number[]; line: string } {
  const seconds: number[] = [];
  let line = '';
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [CLI, ...DEMO, '--out', out, ...extra], { encoding: 'utf8' });
    seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
    if (r.status !== 0) throw new Error(`the demo failed: ${r.stderr}`);
    line = `${r.stdout}\n${r.stderr}`.split('\n').find((l) => l.startsWith('wrote ')) ?? '';
  }
  return { seconds, line };
}

function main(): void {
  const flags = new Command()
    .option('--runs <n>', 'runs of the demo as it is', (v) => parseInt(v, 10), 3)
    .option('--ancestral-runs <n>', 'runs with --sampler ancestral (1,000 steps)', (v) => parseInt(v, 10), 1)
    .option('--out <file>', 'the report', path.join(ROOT, 'bench', 'DEMO.md'))
    .parse()
    .opts();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-demo-'));
  const range = (s: number[]) => `${Math.min(...s).toFixed(2)}..${Math.max(...s).toFixed(2)}`;
  try {
    const fast = timeRuns([], flags.runs, path.join(tmp, 'demo.png'));
    const slow = timeRuns(['--sampler', 'ancestral'], flags.ancestralRuns, path.join(tmp, 'ancestral.png'));
    const ratio = Math.min(...slow.seconds) / Math.min(...fast.seconds);
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
    const report = [
      '# The demo\'s time',
      '',
      `Written by \`node dist/bench/demo.js\` (bench/demo.ts) at ${commit} on ${new Date().toISOString().slice(0, 10)}: the whole`,
      '`npm run demo` command (node start-up, model load, 16 guided sneakers, the PNG), wall time in seconds,',
      `min..max over the runs, on ${os.cpus().length} CPUs (${os.cpus()[0].model}), load average after: ${load}.`,
      '',
      '| command | what it samples | runs | seconds |',
      '| --- | --- | ---: | ---: |',
      `| \`npm run demo\` | ${fast.line.replace(/^wrote \S+: /, '')} | ${flags.runs} | ${range(fast.seconds)} |`,
      `| \`npm run demo -- --sampler ancestral\` | ${slow.line.replace(/^wrote \S+: /, '')} | ${flags.ancestralRuns} | ${range(slow.seconds)} |`,
      '',
      `The shipped model's default sampler makes the demo ${ratio.toFixed(1)}x faster (fastest runs).`,
      '',
    ].join('\n');
    fs.writeFileSync(flags.out, report);
    process.stdout.write(report);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
