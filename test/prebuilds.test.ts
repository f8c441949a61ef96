// scripts/prebuilds.js: the install script uses the package's prebuilt addon only for the LibTorch,
// ABI and platform it was built for, and says why it compiles otherwise. Nothing is compiled here:
// LibTorch folders are faked from the files describeLibTorch reads.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');

interface LibTorch { version: string; cuda: string | null; cxx11Abi: number; libDir?: string }
interface Runtime { platform: string; arch: string; libc: string | null; glibc: string | null; napiVersion: number }
interface Meta { platform: string; arch: string; libc: string | null; glibc: string | null; napiVersion: number; libtorch: LibTorch }
// eslint-disable-next-line @typescript-eslint/no-var-requires
const prebuilds = require(path.join(ROOT, 'scripts', 'prebuilds.js')) as {
  describeLibTorch(torchDir: string): LibTorch;
  matchPrebuild(meta: Meta, libtorch: LibTorch, runtime: Runtime): { ok: boolean; reason: string };
  prebuildFor(root: string, key?: string): { dir: string; addon: string; meta: Meta } | null;
  selectPrebuild(dir: string, libDir: string): void;
  unselectPrebuilds(root: string): void;
  runtimeInfo(): Runtime;
};
// eslint-disable-next-line @typescript-eslint/no-var-requires
const pythonEnv = require(path.join(ROOT, 'scripts', 'python-env.js')) as { findTorchPython(): { python: string; prefix: string } | null };

const META: Meta = {
  platform: 'linux', arch: 'x64', libc: 'glibc', glibc: '2.36', napiVersion: 8,
  libtorch: { version: '2.13.0+cpu', cuda: null, cxx11Abi: 1 },
};
const HERE: Runtime = { platform: 'linux', arch: 'x64', libc: 'glibc', glibc: '2.36', napiVersion: 9 };
const TORCH: LibTorch = { version: '2.13.0+cpu', cuda: null, cxx11Abi: 1 };

describe('prebuilt addons (scripts/prebuilds.js)', () => {
  describe('matching a prebuild with the LibTorch found', () => {
    it('accepts the exact LibTorch, ABI and platform it was built for', () => {
      const m = prebuilds.matchPrebuild(META, TORCH, HERE);
      assert.deepStrictEqual(m, { ok: true, reason: 'LibTorch 2.13.0+cpu, CPU, _GLIBCXX_USE_CXX11_ABI=1, N-API 8' });
    });

    const refusals: [string, Partial<LibTorch>, Partial<Runtime>, RegExp][] = [
      ['another torch version', { version: '2.12.0+cpu' }, {}, /is for LibTorch 2\.13\.0\+cpu, the LibTorch found is 2\.12\.0\+cpu/],
      ['the same version without its local tag', { version: '2.13.0' }, {}, /the LibTorch found is 2\.13\.0$/],
      ['a CUDA LibTorch', { cuda: '12.6' }, {}, /is for CPU LibTorch, the LibTorch found is CUDA 12\.6/],
      ['the other C++ ABI', { cxx11Abi: 0 }, {}, /is for _GLIBCXX_USE_CXX11_ABI=1, the LibTorch found has _GLIBCXX_USE_CXX11_ABI=0/],
      ['another architecture', {}, { arch: 'arm64' }, /is for linux-x64, this is linux-arm64/],
      ['another platform', {}, { platform: 'darwin', libc: null, glibc: null }, /is for linux-x64, this is darwin-x64/],
      ['musl', {}, { libc: 'musl', glibc: null }, /is for glibc, this system has musl/],
      ['an older glibc', {}, { glibc: '2.31' }, /needs glibc 2\.36, this system has 2\.31/],
      ['an older N-API', {}, { napiVersion: 7 }, /needs N-API 8, this Node has 7/],
    ];
    for (const [what, torch, runtime, reason] of refusals) {
      it(`refuses ${what}, saying why`, () => {
        const m = prebuilds.matchPrebuild(META, { ...TORCH, ...torch }, { ...HERE, ...runtime });
        assert.strictEqual(m.ok, false);
        assert.match(m.reason, /^the prebuilt addon /);
        assert.match(m.reason, reason);
      });
    }

    it('takes a newer glibc', () => {
      assert.strictEqual(prebuilds.matchPrebuild(META, TORCH, { ...HERE, glibc: '2.40' }).ok, true);
    });
  });

  describe('what a LibTorch folder is', () => {
    let dir: string;
    beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-prebuilds-'))));
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** A LibTorch install prefix with the given files; returns the folder of TorchConfig.cmake. */
    function fakeLibTorch(files: Record<string, string>): string {
      const torchDir = path.join(dir, 'share', 'cmake', 'Torch');
      for (const [name, text] of Object.entries({ 'share/cmake/Torch/TorchConfig.cmake': '', ...files })) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        fs.writeFileSync(path.join(dir, name), text);
      }
      return torchDir;
    }

    it('reads a pip torch: version.py, CPU, the C++11 ABI from libc10\'s symbols', () => {
      const torchDir = fakeLibTorch({
        'version.py': "__version__ = '2.13.0+cpu'\ncuda: Optional[str] = None\n",
        'lib/libc10.so': '\x7fELF ... _ZN3c106detail14torchCheckFailEPKcS2_jRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE ...',
        'include/torch/headeronly/version.h': '#define TORCH_VERSION \\\n  "2.13.0"\n',
      });
      assert.deepStrictEqual(prebuilds.describeLibTorch(torchDir), { version: '2.13.0+cpu', cuda: null, cxx11Abi: 1, libDir: path.join(dir, 'lib') });
    });

    it('reads a libtorch zip: build-version, CUDA from libtorch_cuda, the ABI from TorchConfig.cmake', () => {
      const torchDir = fakeLibTorch({
        'build-version': '2.4.1+cu121\n',
        'share/cmake/Torch/TorchConfig.cmake': 'set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=0")\n',
        'lib/libc10.so': '\x7fELF _ZN3c1010TensorImplD2Ev',
        'lib/libtorch_cuda.so': '',
      });
      assert.deepStrictEqual(prebuilds.describeLibTorch(torchDir), { version: '2.4.1+cu121', cuda: 'unknown', cxx11Abi: 0, libDir: path.join(dir, 'lib') });
    });

    it('falls back to the headers\' TORCH_VERSION, and says what is missing', () => {
      const torchDir = fakeLibTorch({ 'lib/libc10.so': 'St7__cxx11', 'include/torch/csrc/api/include/torch/version.h': '#define TORCH_VERSION "2.3.0"\n' });
      assert.strictEqual(prebuilds.describeLibTorch(torchDir).version, '2.3.0');
      fs.rmSync(path.join(dir, 'lib'), { recursive: true });
      assert.throws(() => prebuilds.describeLibTorch(torchDir), /no libc10 in/);
    });

    it('describes this machine\'s pip torch as torch itself does', function () {
      const found = pythonEnv.findTorchPython();
      if (!found) this.skip();
      const own = prebuilds.describeLibTorch(path.join(found!.prefix, 'Torch'));
      const code = 'import torch; print(torch.__version__, torch.version.cuda, int(torch._C._GLIBCXX_USE_CXX11_ABI))';
      const [version, cuda, abi] = spawnSync(found!.python, ['-c', code], { encoding: 'utf8' }).stdout.trim().split(' ');
      assert.deepStrictEqual([own.version, own.cuda ?? 'None', own.cxx11Abi], [version, cuda, Number(abi)]);
    });
  });

  it('selecting a prebuild links its libtorch; a compile unlinks it', () => {
    const pkg = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-prebuilds-pkg-'));
    try {
      assert.strictEqual(prebuilds.prebuildFor(pkg, 'linux-x64'), null);
      const dir = path.join(pkg, 'prebuilds', 'linux-x64');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'guided_diffusion.node'), '');
      fs.writeFileSync(path.join(dir, 'guided_diffusion.json'), JSON.stringify(META));
      const pre = prebuilds.prebuildFor(pkg, 'linux-x64');
      assert.deepStrictEqual(pre?.meta, META);
      prebuilds.selectPrebuild(dir, pkg);
      assert.strictEqual(fs.readlinkSync(path.join(dir, 'libtorch')), pkg);
      prebuilds.unselectPrebuilds(pkg);
      assert.ok(!fs.existsSync(path.join(dir, 'libtorch')));
    } finally {
      fs.rmSync(pkg, { recursive: true, force: true });
    }
  });
});
