// npm run bench:install [-- --rounds N] [-- --out FILE] [-- --keep]
//
// How long `npm install guided-diffusion` takes: packs this package (`npm pack`, whose prepack builds
// the prebuilt addon, scripts/prebuilds.js), then per round installs the tarball into fresh app
// directories under the OS temp folder:
//   prebuild           the packed prebuilt addon matches the LibTorch found: nothing compiles
//   cold, no ccache    GD_BUILD_FROM_SOURCE=1 and CCACHE_DISABLE=1: what a machine without ccache
//                      (or whose LibTorch differs from the prebuild's) pays
//   cold, empty ccache GD_BUILD_FROM_SOURCE=1, a private, empty CCACHE_DIR: a first compiling
//                      install where ccache is installed
//   warm               the same CCACHE_DIR again, a new app directory at another path
// and checks after each install that the package loads and runs one tensor op through the addon it
// should (the prebuild or the compiled one: the file mapped into the process).
// npm's own package cache is left as it is (the dependencies come from it or the registry).
// Writes bench/INSTALL.md (or --out FILE) with every time, min..max and the load around it.
// LibTorch must already be there (pip torch), as for any build of the addon.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs as parseArgsUtil } from 'util';
import { fmt, machineInfo, max, median, min, ROOT, sh, table } from './common';

interface Args {
  rounds: number;
  out: string;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const { values } = parseArgsUtil({
    args: argv,
    options: { rounds: { type: 'string' }, out: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log('usage: npm run bench:install -- [--rounds N] [--out FILE] [--keep]');
    console.log('  --keep: leave the temporary app directories and ccache folder in place');
    process.exit(0);
  }
  const rounds = values.rounds === undefined ? 2 : Number(values.rounds);
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds must be a positive integer; got ${values.rounds}`);
  return { rounds, out: values.out ? path.resolve(values.out) : path.join(ROOT, 'bench', 'INSTALL.md'), keep: values.keep === true };
}

type Kind = 'prebuild' | 'cold, no ccache' | 'cold, empty ccache' | 'warm';
const KINDS: Kind[] = ['prebuild', 'cold, no ccache', 'cold, empty ccache', 'warm'];
const usesCcache = (kind: Kind): boolean => kind === 'cold, empty ccache' || kind === 'warm';

interface Install {
  kind: Kind;
  round: number;
  seconds: number;
  loadBefore: number[];
  loadAfter: number[];
  ccache?: string;
}

/** Runs a command, its output into `log`; resolves with the exit code. */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, log: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const fd = fs.openSync(log, 'a');
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', fd, fd] });
    child.on('error', reject);
    child.on('close', (code) => {
      fs.closeSync(fd);
      resolve(code ?? 1);
    });
  });
}

const load = (): number[] => os.loadavg().map((v) => Math.round(v * 100) / 100);

/** The user's environment without CCACHE_* and npm_* settings (this script may run under npm run). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('CCACHE_') && !k.toLowerCase().startsWith('npm_')) env[k] = v;
  }
  return env;
}

async function install(tarball: string, work: string, kind: Kind, round: number, ccacheDir: string): Promise<Install> {
  const app = fs.mkdtempSync(path.join(work, `app-${kind.replace(/\W+/g, '-')}-${round}-`));
  // npm 11 runs a dependency's install script only when the app allows it (older npm ignores allowScripts).
  const pkg = { name: 'gd-install-bench', version: '1.0.0', private: true, allowScripts: { 'guided-diffusion': true } };
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify(pkg));
  const env = cleanEnv();
  if (usesCcache(kind)) env.CCACHE_DIR = ccacheDir;
  else env.CCACHE_DISABLE = '1';
  if (kind !== 'prebuild') env.GD_BUILD_FROM_SOURCE = '1';
  const log = path.join(app, 'install.log');
  if (usesCcache(kind)) await sh('ccache', ['--dir', ccacheDir, '--zero-stats']);
  const loadBefore = load();
  const t0 = performance.now();
  const npmArgs = ['install', '--no-audit', '--no-fund', '--foreground-scripts', tarball];
  const code = await run('npm', npmArgs, app, env, log);
  const seconds = (performance.now() - t0) / 1000;
  const loadAfter = load();
  if (code !== 0) throw new Error(`npm install (${kind}, round ${round}) failed with exit code ${code}; see ${log}`);
  // The installed package must load the addon it should and compute with it.
  const addon = kind === 'prebuild' ? 'prebuilds/linux-x64/guided_diffusion.node' : 'build/Release/guided_diffusion.node';
  const check = 'const { torch } = require("guided-diffusion"); const s = torch.ones([2, 3]).sum().item(); if (s !== 6) throw new Error(`sum ${s}`); ' +
    `const m = require("fs").readFileSync("/proc/self/maps", "utf8"); if (!m.includes("node_modules/guided-diffusion/${addon}")) throw new Error("not loaded: ${addon}"); console.log("ok: ${addon}");`;
  const ok = await run(process.execPath, ['-e', check], app, env, log);
  if (ok !== 0) throw new Error(`the package installed in ${app} does not load ${addon} or compute; see ${log}`);
  const said = fs.readFileSync(log, 'utf8');
  const line = /guided-diffusion: (using the prebuilt addon|compiling the addon)[^\n]*/.exec(said)?.[0] ?? '';
  if (!line.includes(kind === 'prebuild' ? 'using the prebuilt addon' : 'compiling the addon')) {
    throw new Error(`the install (${kind}) did not say it ${kind === 'prebuild' ? 'used the prebuild' : 'compiled'}; see ${log}`);
  }
  if (round === 1) console.log(`  ${line}`);
  let ccache: string | undefined;
  if (usesCcache(kind)) {
    // Zeroed before each install that uses the cache (below), so these count this install only.
    const stats = await sh('ccache', ['--dir', ccacheDir, '--print-stats']);
    const get = (key: string): number => Number(new RegExp(`^${key}\\t(\\d+)`, 'm').exec(stats)?.[1] ?? NaN);
    const hits = get('direct_cache_hit') + get('preprocessed_cache_hit');
    ccache = `${hits} hits, ${get('cache_miss')} misses, ${get('could_not_use_precompiled_header') || 0} PCH uncacheable`;
    if (!stats) ccache = 'ccache not found';
  }
  console.log(`${kind}, round ${round}: ${fmt(seconds)} s (load ${loadBefore.join(' ')} -> ${loadAfter.join(' ')})${ccache ? `; ccache: ${ccache}` : ''}`);
  return { kind, round, seconds, loadBefore, loadAfter, ccache };
}

interface Pack {
  seconds: number;
  kib: number;
  /** The commit packed; "-dirty" when tracked files differed from it (npm pack packs the working tree). */
  commit: string;
  /** The packed prebuild's record (prebuilds/<platform>-<arch>/guided_diffusion.json), or '' when none. */
  prebuild: string;
}

function report(results: Install[], info: Awaited<ReturnType<typeof machineInfo>>, gcc: string, pack: Pack, rounds: number): string {
  const summary = KINDS.map((kind) => {
    const s = results.filter((r) => r.kind === kind).map((r) => r.seconds);
    return [kind, s.length, fmt(min(s)), fmt(median(s)), fmt(max(s))];
  });
  const each = results.map((r) => [r.kind, r.round, fmt(r.seconds), r.loadBefore.join(' '), r.loadAfter.join(' '), r.ccache ?? '']);
  let built = 'none';
  if (pack.prebuild) {
    const m = JSON.parse(pack.prebuild);
    built = `LibTorch ${m.libtorch.version}, ${m.libtorch.cuda ? `CUDA ${m.libtorch.cuda}` : 'CPU'}, ` +
      `_GLIBCXX_USE_CXX11_ABI=${m.libtorch.cxx11Abi}, N-API ${m.napiVersion}, ${m.platform}-${m.arch} glibc ${m.glibc}`;
  }
  return [
    '# `npm install` of the packed package',
    '',
    'Generated by `npm run bench:install` (bench/install.ts); do not edit by hand.',
    '',
    `Measured at ${pack.commit}, ${info.date}, ${info.cpu}, ${info.cores} cores, ${info.memoryGiB} GiB, ${info.kernel}, node ${info.node}, ${gcc},`,
    `LibTorch ${info.libtorch} (pip torch ${info.torchPython}). Tarball ${pack.kib} KiB; \`npm pack\` ${fmt(pack.seconds)} s`,
    `(its prepack builds the prebuilt addon); ${rounds} round(s). The packed prebuild: ${built}.`,
    '',
    'Each install goes into a fresh app directory (`npm install <tarball>`): with the prebuilt addon,',
    'which matches the LibTorch found, so nothing compiles (`prebuild`); then compiling',
    '(`GD_BUILD_FROM_SOURCE=1`, what an install whose LibTorch differs from the prebuild\'s pays):',
    'cold without ccache (`CCACHE_DISABLE=1`), cold with an empty private `CCACHE_DIR`, and warm',
    '(that `CCACHE_DIR` again, another fresh app directory at another path). After each install the',
    'package computes with the addon it should have (the file mapped into the process). Times are',
    'wall seconds of the whole `npm install`, dependencies included.',
    '',
    table(['install', 'rounds', 'min s', 'median s', 'max s'], summary),
    '',
    'Every install, with the load average (1, 5, 15 min) before and after: other work on the',
    'machine inflates the times.',
    '',
    table(['install', 'round', 's', 'load before', 'load after', 'ccache'], each),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-install-bench-'));
  const ccacheDir = path.join(work, 'ccache');
  try {
    const dirty = (await sh('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'])) !== '';
    const commit = `${(await sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])) || 'unknown'}${dirty ? '-dirty' : ''}`;
    console.log(`packing ${ROOT} at ${commit} ...`);
    const packLog = path.join(work, 'pack.log');
    const t0 = performance.now();
    if ((await run('npm', ['pack', '--pack-destination', work], ROOT, cleanEnv(), packLog)) !== 0) {
      throw new Error(`npm pack failed; see ${packLog}`);
    }
    const packSeconds = (performance.now() - t0) / 1000;
    const tarball = fs.readdirSync(work).filter((f) => f.endsWith('.tgz')).map((f) => path.join(work, f))[0];
    if (!tarball) throw new Error(`npm pack wrote no tarball; see ${packLog}`);
    const prebuild = await sh('tar', ['-xzOf', tarball, `package/prebuilds/${process.platform}-${process.arch}/guided_diffusion.json`]);
    const pack: Pack = { seconds: packSeconds, kib: Math.round(fs.statSync(tarball).size / 1024), commit, prebuild };
    console.log(`packed in ${fmt(packSeconds)} s: ${pack.kib} KiB, prebuild ${prebuild ? prebuild.replace(/\s+/g, ' ') : 'none'}`);
    const info = await machineInfo();
    const gcc = (await sh('c++', ['--version'])).split('\n')[0] || 'c++ unknown';
    const results: Install[] = [];
    for (let round = 1; round <= args.rounds; round++) {
      fs.rmSync(ccacheDir, { recursive: true, force: true });
      for (const kind of KINDS) results.push(await install(tarball, work, kind, round, ccacheDir));
    }
    const md = report(results, info, gcc, pack, args.rounds);
    fs.writeFileSync(args.out, md);
    console.log(`\n${md}\nwrote ${args.out}`);
  } finally {
    if (args.keep) console.log(`kept ${work}`);
    else fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
