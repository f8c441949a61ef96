// scripts/python-env.js: where torch goes when no python has it. A stock Debian 12 python refuses
// `pip install` (PEP 668); then a venv is made and torch installed there, trying the exact spec,
// then PyTorch's CPU index, then the public version. Fake pythons (shell scripts that log their
// arguments) stand in for the real ones: nothing is installed here.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const pythonEnv = require(path.join(ROOT, 'scripts', 'python-env.js')) as {
  CPU_INDEX: string;
  installTorch(py: string, options: { spec?: string; extras?: string[]; dir?: string }): { python: string; spec: string; venv: boolean };
  findTorchPython(env: NodeJS.ProcessEnv): { python: string; prefix: string } | null;
  torchAttempts(spec: string): string[][];
};

const EXTERNALLY_MANAGED = `error: externally-managed-environment

× This environment is externally managed
╰─> To install Python packages system-wide, try apt install
    python3-xyz, where xyz is the package you are trying to
    install.`;

describe('installing torch where the system python refuses pip (scripts/python-env.js)', () => {
  let dir: string;
  let calls: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-pyenv-'));
    calls = path.join(dir, 'calls.log');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /**
   * A fake python: `probe` is what it answers to python-env's refusal probe (-c), `pip` a shell
   * case body for `-m pip install ...` ("$*" is every argument), and `-m venv DIR` copies `venvTemplate`
   * (when given) to DIR/bin/python, as python3-venv would make one.
   */
  function fakePython(name: string, probe: string, pip: string, venvTemplate?: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!/bin/bash
echo "${name} $*" >> ${JSON.stringify(calls)}
case "$1" in --version) echo "Python 3.11.2"; exit 0 ;; -c) echo ${JSON.stringify(probe)}; exit 0 ;; esac
if [ "$1 $2 $3" = "-m pip install" ]; then
${pip}
fi
if [ "$1 $2" = "-m venv" ]; then
  ${venvTemplate ? `mkdir -p "$3/bin" && cp ${JSON.stringify(venvTemplate)} "$3/bin/python" && exit 0` : 'echo "The virtual environment was not created successfully because ensurepip is not available." ; exit 1'}
fi
exit 2
`, { mode: 0o755 });
    return file;
  }

  const refusingPip = `cat >&2 <<'EOF'\n${EXTERNALLY_MANAGED}\nEOF\nexit 1`;
  // The -m calls (pip, venv); --version and the -c probes (multi-line scripts) are left out.
  const log = (): string[] => fs.readFileSync(calls, 'utf8').trim().split('\n').filter((l) => /^\S+ -m /.test(l));

  it('makes a venv when pip says externally-managed-environment, and installs the first spec the index has', () => {
    // In the venv the exact local version is missing from the configured index; PyTorch's CPU index has it.
    const venvPy = fakePython('venv-python', 'ok', `case "$*" in
  *"torch==2.13.0+cpu --index-url"*) exit 0 ;;
  *"torch==2.13.0+cpu"*) echo "ERROR: No matching distribution found for torch==2.13.0+cpu" >&2; exit 1 ;;
  *safetensors*) exit 0 ;;
esac
exit 1`);
    const base = fakePython('python3', 'ok', refusingPip, venvPy);
    const venv = path.join(dir, 'venv');
    const r = pythonEnv.installTorch(base, { spec: 'torch==2.13.0+cpu', extras: ['safetensors'], dir: venv });
    assert.deepStrictEqual(r, { python: path.join(venv, 'bin', 'python'), spec: `torch==2.13.0+cpu --index-url ${pythonEnv.CPU_INDEX}`, venv: true });
    const pip = '-m pip install --retries 0 --progress-bar off';
    assert.deepStrictEqual(log(), [
      `python3 ${pip} torch==2.13.0+cpu`,
      `python3 -m venv ${venv}`,
      `venv-python ${pip} torch==2.13.0+cpu`,
      `venv-python ${pip} torch==2.13.0+cpu --index-url ${pythonEnv.CPU_INDEX}`,
      `venv-python ${pip} safetensors`,
    ]);
  });

  it('goes straight to the venv when the python has the EXTERNALLY-MANAGED marker, falling back to the public version', () => {
    const venvPy = fakePython('venv-python', 'ok', `case "$*" in *"torch==2.13.0 "*|*"torch==2.13.0") exit 0 ;; esac
echo "ERROR: Could not find a version that satisfies the requirement" >&2; exit 1`);
    const base = fakePython('python3', 'EXTERNALLY-MANAGED marker /usr/lib/python3.11/EXTERNALLY-MANAGED', 'exit 0', venvPy);
    const venv = path.join(dir, 'venv');
    const r = pythonEnv.installTorch(base, { spec: 'torch==2.13.0+cpu', dir: venv });
    assert.strictEqual(r.spec, 'torch==2.13.0');
    assert.strictEqual(r.python, path.join(venv, 'bin', 'python'));
    const lines = log();
    const pip = '-m pip install --retries 0 --progress-bar off';
    assert.deepStrictEqual(lines, [
      `python3 -m venv ${venv}`,
      `venv-python ${pip} torch==2.13.0+cpu`,
      `venv-python ${pip} torch==2.13.0+cpu --index-url ${pythonEnv.CPU_INDEX}`,
      `venv-python ${pip} torch==2.13.0`,
    ]);
  });

  it('installs into a python that accepts pip, with no venv', () => {
    const base = fakePython('python3', 'ok', 'exit 0');
    const venv = path.join(dir, 'venv');
    const r = pythonEnv.installTorch(base, { spec: 'torch==2.13.0+cpu', dir: venv });
    assert.deepStrictEqual(r, { python: base, spec: 'torch==2.13.0+cpu', venv: false });
    assert.ok(!fs.existsSync(venv));
  });

  it('says to install python3-venv when the venv cannot be made', () => {
    const base = fakePython('python3', 'ok', refusingPip);
    assert.throws(() => pythonEnv.installTorch(base, { dir: path.join(dir, 'venv') }), /apt-get install python3-venv/);
  });

  it('an exact spec without a local version is the only attempt', () => {
    assert.deepStrictEqual(pythonEnv.torchAttempts('torch==2.5.1'), [['torch==2.5.1']]);
    assert.deepStrictEqual(pythonEnv.torchAttempts('torch==2.13.0+cpu'), [
      ['torch==2.13.0+cpu'], ['torch==2.13.0+cpu', '--index-url', pythonEnv.CPU_INDEX], ['torch==2.13.0']]);
  });

  it('finds torch in the venv made earlier when PYTHON has none', () => {
    const prefix = path.join(dir, 'site', 'torch', 'share', 'cmake');
    fs.mkdirSync(path.join(prefix, 'Torch'), { recursive: true });
    fs.writeFileSync(path.join(prefix, 'Torch', 'TorchConfig.cmake'), '');
    const venv = path.join(dir, 'venv');
    fs.mkdirSync(path.join(venv, 'bin'), { recursive: true });
    fs.copyFileSync(fakePython('with-torch', prefix, 'exit 1'), path.join(venv, 'bin', 'python'));
    const without = fakePython('without-torch', '', 'exit 1');
    const found = pythonEnv.findTorchPython({ PATH: process.env.PATH, PYTHON: without, GD_VENV: venv });
    assert.deepStrictEqual(found, { python: path.join(venv, 'bin', 'python'), prefix });
  });
});
