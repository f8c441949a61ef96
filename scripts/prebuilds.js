#!/usr/bin/env node
// Prebuilt addons, prebuildify style: prebuilds/<platform>-<arch>/guided_diffusion.node, built at
// `npm pack` time (package.json's prepack runs this file) against the LibTorch a build would use,
// with guided_diffusion.json beside it recording what it was built for:
//   { platform, arch, libc, glibc, napiVersion, nodeAddonApi, commit,
//     libtorch: { version, cuda, cxx11Abi } }
// Its RUNPATH is only $ORIGIN/libtorch (CMakeLists.txt's GD_PREBUILD). The install script
// (scripts/build-addon.js) compares the LibTorch it finds with that record; when they match exactly
// it links prebuilds/<platform>-<arch>/libtorch to that LibTorch's lib folder and compiles nothing.
// That link is also what tells lib/binding.ts to load the prebuild instead of build/Release.
//
// `node scripts/prebuilds.js` (prepack) builds into GD_PREBUILD_BUILD_DIR (default build-prebuild/);
// GD_SKIP_PREBUILD=1 packs without one (installs then compile).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const ADDON = 'guided_diffusion.node';
const META = 'guided_diffusion.json';
const LINK = 'libtorch';

function log(msg) {
  process.stderr.write(`guided-diffusion: ${msg}\n`);
}

function platformKey(platform = process.platform, arch = process.arch) {
  return `${platform}-${arch}`;
}

function readIf(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/**
 * What a LibTorch is, from its files (nothing imported or run): the folder of TorchConfig.cmake in,
 * { version, cuda, cxx11Abi, libDir } out. version: torch's version.py (pip torch, e.g.
 * "2.13.0+cpu"), else libtorch's build-version, else TORCH_VERSION of its headers; cuda: its CUDA
 * version (version.py), "unknown" when only libtorch_cuda says so, null for a CPU build; cxx11Abi
 * (_GLIBCXX_USE_CXX11_ABI, 0 or 1): TorchConfig.cmake's TORCH_CXX_FLAGS where it sets it, else
 * whether libc10's symbols use std::__cxx11. Throws naming what is missing.
 */
function describeLibTorch(torchDir) {
  const prefix = path.resolve(torchDir, '..', '..', '..');
  const libDir = path.join(prefix, 'lib');
  const libc10 = ['libc10.so', 'libc10.dylib'].map((f) => path.join(libDir, f)).find((f) => fs.existsSync(f));
  if (!libc10) throw new Error(`no libc10 in ${libDir}`);
  const versionPy = readIf(path.join(prefix, 'version.py')) || '';
  const header = ['include/torch/headeronly/version.h', 'include/torch/csrc/api/include/torch/version.h']
    .map((f) => readIf(path.join(prefix, f))).find(Boolean) || '';
  const version = /^__version__\s*=\s*['"]([^'"]+)['"]/m.exec(versionPy)?.[1] ||
    (readIf(path.join(prefix, 'build-version')) || '').trim() ||
    /#define TORCH_VERSION\s*\\?\s*"([^"]+)"/.exec(header)?.[1];
  if (!version) throw new Error(`no version found in ${prefix} (version.py, build-version, torch/version.h)`);
  const hasCuda = fs.readdirSync(libDir).some((f) => /^libtorch_cuda\./.test(f));
  const cudaPy = /^cuda\s*(?::[^=]*)?=\s*['"]([^'"]+)['"]/m.exec(versionPy)?.[1];
  const flags = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(readIf(path.join(torchDir, 'TorchConfig.cmake')) || '');
  const cxx11Abi = flags ? Number(flags[1]) : fs.readFileSync(libc10).includes('St7__cxx11') ? 1 : 0;
  return { version, cuda: hasCuda ? cudaPy || 'unknown' : null, cxx11Abi, libDir };
}

/** This process's platform, as a prebuild's record states it. */
function runtimeInfo() {
  const glibc = process.platform === 'linux' ? process.report.getReport().header.glibcVersionRuntime : undefined;
  return {
    platform: process.platform,
    arch: process.arch,
    libc: process.platform === 'linux' ? (glibc ? 'glibc' : 'musl') : null,
    glibc: glibc || null,
    napiVersion: Number(process.versions.napi),
  };
}

const flavour = (t) => `LibTorch ${t.version}, ${t.cuda ? `CUDA ${t.cuda}` : 'CPU'}, _GLIBCXX_USE_CXX11_ABI=${t.cxx11Abi}`;

function olderVersion(a, b) {
  const x = String(a).split('.').map(Number);
  const y = String(b).split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) < (y[i] || 0);
  }
  return false;
}

/**
 * Whether a prebuild (its record) runs here with this LibTorch (describeLibTorch) and this runtime
 * (runtimeInfo): { ok, reason }; the reason names what differs, or what matched.
 */
function matchPrebuild(meta, libtorch, runtime) {
  const built = meta.libtorch || {};
  const reason = (why) => ({ ok: false, reason: `the prebuilt addon ${why}` });
  if (meta.platform !== runtime.platform || meta.arch !== runtime.arch) {
    return reason(`is for ${platformKey(meta.platform, meta.arch)}, this is ${platformKey(runtime.platform, runtime.arch)}`);
  }
  if ((meta.libc || null) !== (runtime.libc || null)) return reason(`is for ${meta.libc}, this system has ${runtime.libc}`);
  if (meta.glibc && runtime.glibc && olderVersion(runtime.glibc, meta.glibc)) {
    return reason(`needs glibc ${meta.glibc}, this system has ${runtime.glibc}`);
  }
  if (!(runtime.napiVersion >= meta.napiVersion)) {
    return reason(`needs N-API ${meta.napiVersion}, this Node has ${runtime.napiVersion}`);
  }
  if (built.version !== libtorch.version) return reason(`is for LibTorch ${built.version}, the LibTorch found is ${libtorch.version}`);
  if ((built.cuda || null) !== (libtorch.cuda || null)) {
    const name = (c) => (c ? `CUDA ${c}` : 'CPU');
    return reason(`is for ${name(built.cuda)} LibTorch, the LibTorch found is ${name(libtorch.cuda)}`);
  }
  if (built.cxx11Abi !== libtorch.cxx11Abi) {
    return reason(`is for _GLIBCXX_USE_CXX11_ABI=${built.cxx11Abi}, the LibTorch found has _GLIBCXX_USE_CXX11_ABI=${libtorch.cxx11Abi}`);
  }
  return { ok: true, reason: `${flavour(built)}, N-API ${meta.napiVersion}` };
}

/** This platform's prebuild in a package: { dir, addon, meta }, or null when it has none. */
function prebuildFor(root = ROOT, key = platformKey()) {
  const dir = path.join(root, 'prebuilds', key);
  const meta = readIf(path.join(dir, META));
  if (!meta || !fs.existsSync(path.join(dir, ADDON))) return null;
  return { dir, addon: path.join(dir, ADDON), meta: JSON.parse(meta) };
}

/** Points the prebuild's $ORIGIN/libtorch at a LibTorch's lib folder: lib/binding.ts then loads it. */
function selectPrebuild(dir, libDir) {
  fs.rmSync(path.join(dir, LINK), { force: true });
  fs.symlinkSync(libDir, path.join(dir, LINK), 'dir');
}

/** Drops every prebuild's link (a compiled addon is to be loaded). */
function unselectPrebuilds(root = ROOT) {
  const base = path.join(root, 'prebuilds');
  if (!fs.existsSync(base)) return;
  for (const key of fs.readdirSync(base)) fs.rmSync(path.join(base, key, LINK), { force: true });
}

function git(args) {
  const r = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** prepack: builds this platform's prebuild against the LibTorch found, checks it loads, records it. */
function pack() {
  const base = path.join(ROOT, 'prebuilds');
  fs.rmSync(base, { recursive: true, force: true });
  if (/^(1|true|yes|on)$/i.test(process.env.GD_SKIP_PREBUILD || '')) {
    log('GD_SKIP_PREBUILD: packing without a prebuilt addon (installs compile)');
    return 0;
  }
  const build = require('./build-addon');
  const found = build.findLibTorch();
  if (!found.torchDir) throw new Error(`cannot tell which LibTorch ${found.from} is (no TorchConfig.cmake under it)`);
  const libtorch = describeLibTorch(found.torchDir);
  const outDir = path.resolve(ROOT, process.env.GD_PREBUILD_BUILD_DIR || 'build-prebuild');
  log(`building the prebuilt addon in ${outDir} against ${flavour(libtorch)} from ${found.from}`);
  const status = build.compileAddon(outDir, [...found.defines, '--CDGD_PREBUILD=ON']);
  if (status !== 0) return status;
  const dir = path.join(base, platformKey());
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(outDir, 'Release', ADDON), path.join(dir, ADDON));
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const { libDir, ...recorded } = libtorch;
  const runtime = runtimeInfo();
  const meta = {
    platform: runtime.platform, arch: runtime.arch, libc: runtime.libc, glibc: runtime.glibc,
    napiVersion: pkg.binary.napi_versions[0],
    nodeAddonApi: require('node-addon-api/package.json').version,
    libtorch: recorded,
    commit: git(['rev-parse', '--short', 'HEAD']),
  };
  fs.writeFileSync(path.join(dir, META), `${JSON.stringify(meta, null, 2)}\n`);
  // It must load through the link alone (no RUNPATH into this machine's LibTorch).
  selectPrebuild(dir, libDir);
  const check = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(dir, ADDON))})`], { encoding: 'utf8' });
  fs.rmSync(path.join(dir, LINK), { force: true });
  if (check.status !== 0) throw new Error(`the prebuilt addon does not load: ${check.stderr.trim()}`);
  log(`prebuilt ${path.relative(ROOT, path.join(dir, ADDON))} (${flavour(libtorch)}, N-API ${meta.napiVersion})`);
  return 0;
}

module.exports = {
  ADDON, META, LINK, platformKey, describeLibTorch, runtimeInfo, matchPrebuild, prebuildFor, selectPrebuild, unselectPrebuilds,
};

if (require.main === module) {
  try {
    process.exit(pack());
  } catch (err) {
    log(`${err.message}\n  (GD_SKIP_PREBUILD=1 packs without a prebuilt addon)`);
    process.exit(1);
  }
}
