#!/usr/bin/env node
// Compiles the native addon with cmake-js against a LibTorch found, in order, from:
//   1. LIBTORCH              an unpacked libtorch folder
//   2. Torch_DIR / CMAKE_PREFIX_PATH
//   3. the Python `torch` package (torch.utils.cmake_prefix_path)
// GD_BUILD_DIR builds elsewhere than build/ (load that addon with GD_ADDON_PATH).
// When none is there it installs CPU LibTorch with pip (and says so), into a venv where the system
// python refuses installs (scripts/python-env.js); when that fails it stops with a message that
// says exactly what to install.
// A packed package carries a prebuilt addon (scripts/prebuilds.js): when the LibTorch found is the
// one it was built for, the install uses it and compiles nothing; otherwise the log says why it
// compiles (GD_BUILD_FROM_SOURCE=1 always compiles).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const prebuilds = require('./prebuilds');
const pythonEnv = require('./python-env');

const root = path.resolve(__dirname, '..');

function log(msg) {
  process.stderr.write(`guided-diffusion: ${msg}\n`);
}

// The folder holding TorchConfig.cmake under a CMAKE_PREFIX_PATH entry (as find_package looks), or null.
function torchDirUnder(prefix) {
  for (const sub of ['Torch', path.join('share', 'cmake', 'Torch'), path.join('lib', 'cmake', 'Torch')]) {
    if (fs.existsSync(path.join(prefix, sub, 'TorchConfig.cmake'))) return path.join(prefix, sub);
  }
  return null;
}

// { defines (cmake-js), from (for the log), torchDir (the folder of TorchConfig.cmake, null if unknown) }
function findLibTorch() {
  if (process.env.LIBTORCH) {
    const dir = path.resolve(process.env.LIBTORCH);
    if (!fs.existsSync(path.join(dir, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'))) {
      throw new Error(`LIBTORCH=${dir} is not an unpacked libtorch folder (no share/cmake/Torch/TorchConfig.cmake)`);
    }
    return { defines: [`--CDCMAKE_PREFIX_PATH=${dir}`], from: `LIBTORCH (${dir})`, torchDir: path.join(dir, 'share', 'cmake', 'Torch') };
  }
  if (process.env.Torch_DIR) {
    return { defines: [`--CDTorch_DIR=${process.env.Torch_DIR}`], from: `Torch_DIR (${process.env.Torch_DIR})`, torchDir: path.resolve(process.env.Torch_DIR) };
  }
  if (process.env.CMAKE_PREFIX_PATH) {
    const torchDir = process.env.CMAKE_PREFIX_PATH.split(path.delimiter).filter(Boolean).map(torchDirUnder).find(Boolean) || null;
    return { defines: [`--CDCMAKE_PREFIX_PATH=${process.env.CMAKE_PREFIX_PATH}`], from: 'CMAKE_PREFIX_PATH', torchDir };
  }
  const spec = process.env.GD_TORCH_PIP_SPEC || pythonEnv.DEFAULT_TORCH_SPEC;
  let found = pythonEnv.findTorchPython();
  if (!found) {
    const py = pythonEnv.basePython();
    if (py) {
      log(`no LibTorch found; installing CPU LibTorch with pip (${spec}) ...`);
      try {
        const r = pythonEnv.installTorch(py, { spec });
        const prefix = pythonEnv.torchCmakePrefix(r.python);
        if (prefix) found = { python: r.python, prefix };
      } catch (err) {
        log(err.message);
      }
    }
  }
  if (found) {
    return { defines: [`--CDCMAKE_PREFIX_PATH=${found.prefix}`], from: `Python torch (${found.prefix})`, torchDir: path.join(found.prefix, 'Torch') };
  }
  throw new Error(
    'LibTorch was not found and could not be installed.\n' +
    `  Install it with:  python3 -m pip install ${spec}\n` +
    '  (where that python refuses installs: apt-get install python3-venv; python3 -m venv .venv; .venv/bin/pip install torch)\n' +
    '  or unpack a libtorch zip from pytorch.org and set LIBTORCH=/path/to/libtorch\n' +
    '  (for CUDA: a CUDA build of torch or libtorch, and the CUDA toolkit), then run npm install again.');
}

// ccache settings that let a rebuild hit: with the precompiled header (CMakeLists.txt) ccache
// needs pch_defines,time_macros and, since the header is rebuilt just before, the include file
// times ignored; BASEDIR (the folder holding node_modules) and NOHASHDIR let a fresh app
// directory at another path hit what an earlier install compiled. Any CCACHE_* the user set wins.
function ccacheEnv() {
  const env = {};
  if (!process.env.CCACHE_SLOPPINESS) env.CCACHE_SLOPPINESS = 'pch_defines,time_macros,include_file_mtime,include_file_ctime';
  if (!process.env.CCACHE_BASEDIR) {
    const parts = root.split(path.sep);
    const nm = parts.indexOf('node_modules');
    env.CCACHE_BASEDIR = nm > 0 ? parts.slice(0, nm).join(path.sep) : root;
  }
  if (!process.env.CCACHE_NOHASHDIR && !process.env.CCACHE_HASHDIR) env.CCACHE_NOHASHDIR = 'true';
  return env;
}

// Why this install compiles rather than use the package's prebuilt addon (scripts/prebuilds.js),
// or null after selecting that prebuild (it matches the LibTorch found exactly).
function prebuildRefusal(found) {
  if (/^(1|true|yes|on)$/i.test(process.env.GD_BUILD_FROM_SOURCE || '')) return 'GD_BUILD_FROM_SOURCE is set';
  if (process.env.GD_BUILD_DIR) return 'GD_BUILD_DIR is set';
  if (fs.existsSync(path.join(root, '.git'))) return 'a git checkout builds its own addon (prebuilt ones are for the packed package)';
  const pre = prebuilds.prebuildFor(root);
  if (!pre) return `the package has no prebuilt addon for ${prebuilds.platformKey()}`;
  if (!found.torchDir) return `the LibTorch of ${found.from} cannot be compared with the prebuilt addon (no TorchConfig.cmake under it)`;
  let libtorch;
  try {
    libtorch = prebuilds.describeLibTorch(found.torchDir);
  } catch (err) {
    return `the LibTorch of ${found.from} cannot be compared with the prebuilt addon (${err.message})`;
  }
  const match = prebuilds.matchPrebuild(pre.meta, libtorch, prebuilds.runtimeInfo());
  if (!match.ok) return match.reason;
  prebuilds.selectPrebuild(pre.dir, libtorch.libDir);
  log(`using the prebuilt addon ${path.relative(root, pre.addon)} (${match.reason}) with LibTorch from ${found.from}; nothing to compile`);
  return null;
}

/** cmake-js compile into outDir (relative to the package root, or absolute); the exit status. */
function compileAddon(outDir, defines) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const args = [cmakeJs, 'compile', '--out', outDir, ...defines];
  if (process.env.GD_DEBUG_BUILD) args.push('--debug');
  // GD_UNITY_BUILD=0: one object per source file, for incremental development builds.
  if (process.env.GD_UNITY_BUILD !== undefined) {
    args.push(`--CDGD_UNITY_BUILD=${/^(0|off|false|no)$/i.test(process.env.GD_UNITY_BUILD) ? 'OFF' : 'ON'}`);
  }
  const parallel = process.env.CMAKE_BUILD_PARALLEL_LEVEL || String(Math.max(1, require('os').cpus().length));
  const r = spawnSync(process.execPath, args, {
    cwd: root, stdio: 'inherit', env: { ...process.env, ...ccacheEnv(), CMAKE_BUILD_PARALLEL_LEVEL: parallel },
  });
  if (r.status === 0 && root.split(path.sep).includes('node_modules')) dropPrecompiledHeaders(path.resolve(root, outDir));
  return r.status === null ? 1 : r.status;
}

function main() {
  let found;
  try {
    found = findLibTorch();
  } catch (err) {
    log(err.message);
    process.exit(1);
  }
  const why = prebuildRefusal(found);
  if (why === null) process.exit(0);
  prebuilds.unselectPrebuilds(root);
  log(`compiling the addon against LibTorch from ${found.from}: ${why}`);
  process.exit(compileAddon(process.env.GD_BUILD_DIR || 'build', found.defines));
}

// Installed as a dependency (inside node_modules) the addon is not rebuilt file by file, so the
// precompiled header (about 550 MB in the build folder) has done its work (ccache, where used,
// keeps its own copy for the next install).
function dropPrecompiledHeaders(buildDir) {
  const dir = path.join(buildDir, 'CMakeFiles');
  if (!fs.existsSync(dir)) return;
  for (const target of fs.readdirSync(dir)) {
    const gch = path.join(dir, target, 'cmake_pch.hxx.gch');
    if (fs.existsSync(gch)) fs.rmSync(gch);
  }
}

module.exports = { findLibTorch, compileAddon };

if (require.main === module) main();
