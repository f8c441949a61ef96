#!/usr/bin/env node
// Compiles the native addon with cmake-js against a LibTorch found, in order, from:
//   1. LIBTORCH              an unpacked libtorch folder
//   2. Torch_DIR / CMAKE_PREFIX_PATH
//   3. the Python `torch` package (torch.utils.cmake_prefix_path)
// GD_BUILD_DIR builds elsewhere than build/ (load that addon with GD_ADDON_PATH).
// When none is there it installs CPU LibTorch with pip (and says so); when that fails it
// stops with a message that says exactly what to install.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const TORCH_PIP_SPEC = process.env.GD_TORCH_PIP_SPEC || 'torch==2.13.0+cpu';
const root = path.resolve(__dirname, '..');

function log(msg) {
  process.stderr.write(`guided-diffusion: ${msg}\n`);
}

function python() {
  for (const cmd of [process.env.PYTHON, 'python3', 'python']) {
    if (!cmd) continue;
    const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return cmd;
  }
  return null;
}

function torchPrefixFromPython(py) {
  const r = spawnSync(py, ['-c', 'import torch; print(torch.utils.cmake_prefix_path)'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const dir = r.stdout.trim();
  return fs.existsSync(path.join(dir, 'Torch', 'TorchConfig.cmake')) ? dir : null;
}

function findLibTorch() {
  if (process.env.LIBTORCH) {
    const dir = path.resolve(process.env.LIBTORCH);
    if (!fs.existsSync(path.join(dir, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'))) {
      throw new Error(`LIBTORCH=${dir} is not an unpacked libtorch folder (no share/cmake/Torch/TorchConfig.cmake)`);
    }
    return { defines: [`--CDCMAKE_PREFIX_PATH=${dir}`], from: `LIBTORCH (${dir})` };
  }
  if (process.env.Torch_DIR) {
    return { defines: [`--CDTorch_DIR=${process.env.Torch_DIR}`], from: `Torch_DIR (${process.env.Torch_DIR})` };
  }
  if (process.env.CMAKE_PREFIX_PATH) {
    return { defines: [`--CDCMAKE_PREFIX_PATH=${process.env.CMAKE_PREFIX_PATH}`], from: 'CMAKE_PREFIX_PATH' };
  }
  const py = python();
  if (py) {
    let prefix = torchPrefixFromPython(py);
    if (!prefix) {
      log(`no LibTorch found; installing CPU LibTorch with pip (${TORCH_PIP_SPEC}) ...`);
      const r = spawnSync(py, ['-m', 'pip', 'install', '--retries', '0', TORCH_PIP_SPEC], { stdio: 'inherit' });
      if (r.status === 0) prefix = torchPrefixFromPython(py);
    }
    if (prefix) return { defines: [`--CDCMAKE_PREFIX_PATH=${prefix}`], from: `Python torch (${prefix})` };
  }
  throw new Error(
    'LibTorch was not found and could not be installed.\n' +
    `  Install it with:  python3 -m pip install ${TORCH_PIP_SPEC}\n` +
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

function main() {
  let found;
  try {
    found = findLibTorch();
  } catch (err) {
    log(err.message);
    process.exit(1);
  }
  log(`building the addon against LibTorch from ${found.from}`);
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const outDir = process.env.GD_BUILD_DIR || 'build';
  const args = [cmakeJs, 'compile', '--out', outDir, ...found.defines];
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
  process.exit(r.status === null ? 1 : r.status);
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

main();
