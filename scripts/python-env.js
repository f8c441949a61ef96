#!/usr/bin/env node
// Which python has torch (for LibTorch: scripts/build-addon.js; for the Python cross-checks:
// .ci/run, scripts/ci-native.sh, test/helpers.ts), and how torch gets installed when none has it.
//
// A stock Debian 12 python refuses `pip install` (PEP 668: an EXTERNALLY-MANAGED file in its
// stdlib dir, "error: externally-managed-environment"), and without python3-pip it has no pip.
// Then torch goes into a venv of its own, made with `python3 -m venv` (apt's python3-venv): the
// folder GD_VENV, else .venv in the package root. Once made, that venv is where torch is looked for
// after PYTHON and before python3.
//
// CLI (.ci/run): `node scripts/python-env.js [--ensure PKG...]` prints the python that has torch
// (and PKG...), installing what is missing first; the log goes to stderr.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const DEFAULT_TORCH_SPEC = 'torch==2.13.0+cpu';
const CPU_INDEX = 'https://download.pytorch.org/whl/cpu';
// Prints torch.utils.cmake_prefix_path (torch/share/cmake) without importing torch (~4 s).
const TORCH_PREFIX_PY =
  "import importlib.util, os; s = importlib.util.find_spec('torch'); " +
  "print(os.path.join(os.path.dirname(s.origin), 'share', 'cmake') if s and s.origin else '')";
// Why this python would refuse `pip install`, or 'ok'. Inside a venv PEP 668's marker does not apply.
const REFUSAL_PY = [
  'import importlib.util, os, sys, sysconfig',
  "marker = os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')",
  "if sys.prefix == sys.base_prefix and os.path.exists(marker): print('EXTERNALLY-MANAGED marker ' + marker)",
  "elif importlib.util.find_spec('pip') is None: print('no pip')",
  "else: print('ok')",
].join('\n');

function log(msg) {
  process.stderr.write(`guided-diffusion: ${msg}\n`);
}

function venvDir(env = process.env) {
  return path.resolve(env.GD_VENV || path.join(ROOT, '.venv'));
}

function venvPython(dir) {
  return path.join(dir, 'bin', 'python');
}

function runs(cmd) {
  return spawnSync(cmd, ['--version'], { encoding: 'utf8' }).status === 0;
}

/** The python to install into: PYTHON, else python3, else python; null when none runs. */
function basePython(env = process.env) {
  return [env.PYTHON, 'python3', 'python'].find((cmd) => cmd && runs(cmd)) || null;
}

/** torch's CMake prefix (torch/share/cmake) as `py` sees it, or null when it has no torch. */
function torchCmakePrefix(py) {
  const r = spawnSync(py, ['-c', TORCH_PREFIX_PY], { encoding: 'utf8' });
  const dir = r.status === 0 ? r.stdout.trim() : '';
  return dir && fs.existsSync(path.join(dir, 'Torch', 'TorchConfig.cmake')) ? dir : null;
}

/** The first of PYTHON, the venv made earlier, python3, python that has torch: { python, prefix }, or null. */
function findTorchPython(env = process.env) {
  const venvPy = venvPython(venvDir(env));
  for (const py of [env.PYTHON, fs.existsSync(venvPy) ? venvPy : null, 'python3', 'python']) {
    if (!py || !runs(py)) continue;
    const prefix = torchCmakePrefix(py);
    if (prefix) return { python: py, prefix };
  }
  return null;
}

/** The python for the tests' Python cross-checks: the one with torch, else PYTHON or python3. */
function testPython(env = process.env) {
  const found = findTorchPython(env);
  return found ? found.python : env.PYTHON || 'python3';
}

/** Why `py` would refuse `pip install` (a string), or null when it would not. */
function installRefusal(py) {
  const r = spawnSync(py, ['-c', REFUSAL_PY], { encoding: 'utf8' });
  const out = (r.stdout || '').trim();
  return r.status === 0 && out !== 'ok' && out !== '' ? out : null;
}

/**
 * The pip arguments to try for a torch spec, in order: the spec as given on the configured index;
 * for a local version (`torch==2.13.0+cpu`, which only PyTorch's own index has) the same from
 * PyTorch's CPU wheel index, then the public version (`torch==2.13.0`) from the configured index.
 */
function torchAttempts(spec) {
  const local = /^(torch==[^+\s]+)\+cpu$/.exec(spec);
  if (!local) return [[spec]];
  return [[spec], [spec, '--index-url', CPU_INDEX], [local[1]]];
}

/** One `pip install`, its output kept (and shown on failure). */
function pipInstall(py, args) {
  const r = spawnSync(py, ['-m', 'pip', 'install', '--retries', '0', '--progress-bar', 'off', ...args], { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout || ''}${r.stderr || ''}${r.error ? r.error.message : ''}` };
}

const lastLine = (text) => text.trim().split('\n').filter((l) => l.trim()).pop() || '(no output)';

/**
 * Installs torch (the attempts of torchAttempts(spec), the first that pip installs wins) and then
 * `extras` with `py`; when `py` refuses installs (PEP 668 or no pip: installRefusal, or pip's own
 * "externally-managed-environment" error), into a venv at `dir` made from `py` instead.
 * Returns { python, spec, venv } (spec: the pip arguments that installed torch, as one string);
 * throws with what to do when nothing worked.
 */
function installTorch(py, { spec = DEFAULT_TORCH_SPEC, extras = [], dir = venvDir() } = {}) {
  const refusal = installRefusal(py);
  if (!refusal) {
    const r = installInto(py, spec, extras);
    if (r.ok) return { python: py, spec: r.spec, venv: false };
    if (!/externally-managed-environment/.test(r.output)) {
      throw new Error(`pip could not install torch into ${py}: ${r.why}`);
    }
    log(`${py} refuses pip installs (pip: externally-managed-environment); using a venv at ${dir}`);
  } else {
    log(`${py} refuses pip installs (${refusal}); using a venv at ${dir}`);
  }
  const vpy = venvPython(dir);
  if (!fs.existsSync(vpy)) {
    const made = spawnSync(py, ['-m', 'venv', dir], { encoding: 'utf8' });
    if (made.status !== 0) {
      throw new Error(
        `could not make a venv with ${py} -m venv ${dir}: ${lastLine(`${made.stdout || ''}${made.stderr || ''}`)}\n` +
        '  On Debian/Ubuntu: apt-get install python3-venv');
    }
  }
  const r = installInto(vpy, spec, extras);
  if (!r.ok) throw new Error(`pip could not install torch into the venv ${dir}: ${r.why}`);
  return { python: vpy, spec: r.spec, venv: true };
}

function installInto(py, spec, extras) {
  const failed = [];
  const attempts = torchAttempts(spec);
  for (const args of attempts) {
    const what = args.join(' ');
    const r = pipInstall(py, args);
    if (!r.ok) {
      if (/externally-managed-environment/.test(r.output)) return { ok: false, output: r.output, why: 'externally-managed-environment' };
      failed.push(`${what}: ${lastLine(r.output)}`);
      log(`pip could not install ${what} (${lastLine(r.output)})${failed.length < attempts.length ? '; trying the next' : ''}`);
      continue;
    }
    log(`installed ${what} into ${py}`);
    if (extras.length) {
      const e = pipInstall(py, extras);
      if (!e.ok) return { ok: false, output: e.output, why: `${extras.join(' ')}: ${lastLine(e.output)}` };
    }
    return { ok: true, spec: what };
  }
  return { ok: false, output: '', why: failed.join('; ') };
}

/** Modules among `names` that `py` cannot import. */
function missingModules(py, names) {
  const code = `import importlib.util as u; print(' '.join(m for m in ${JSON.stringify(names)} if u.find_spec(m) is None))`;
  const r = spawnSync(py, ['-c', code], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split(/\s+/).filter(Boolean) : names;
}

/** The python with torch and `extras` (pip names = module names), installing what is missing. */
function ensurePython(extras = [], env = process.env) {
  const spec = env.GD_TORCH_PIP_SPEC || DEFAULT_TORCH_SPEC;
  const found = findTorchPython(env);
  if (found) {
    const missing = missingModules(found.python, extras);
    if (missing.length) {
      const r = pipInstall(found.python, missing);
      if (!r.ok) throw new Error(`pip could not install ${missing.join(' ')} into ${found.python}: ${lastLine(r.output)}`);
    }
    return found.python;
  }
  const py = basePython(env);
  if (!py) throw new Error('no python found (PYTHON, python3, python); on Debian: apt-get install python3 python3-venv');
  log(`no python with torch; installing ${spec} with pip ...`);
  return installTorch(py, { spec, extras, dir: venvDir(env) }).python;
}

module.exports = {
  DEFAULT_TORCH_SPEC, CPU_INDEX, venvDir, basePython, torchCmakePrefix, findTorchPython, testPython,
  installRefusal, torchAttempts, installTorch, ensurePython,
};

if (require.main === module) {
  const args = process.argv.slice(2);
  const extras = args[0] === '--ensure' ? args.slice(1) : [];
  try {
    process.stdout.write(`${ensurePython(extras)}\n`);
  } catch (err) {
    log(err.message);
    process.exit(1);
  }
}
