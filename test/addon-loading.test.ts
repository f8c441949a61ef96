// A package whose addon was never built (npm 11 skips unapproved install scripts) must say
// what to run, not list the paths `bindings` tried.
import * as assert from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');

function loadError(dir: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    execFileSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(dir, 'dist', 'lib', 'index.js'))})`], {
      env: { ...process.env, GD_ADDON_PATH: '', ...env },
      stdio: 'pipe',
    });
  } catch (err) {
    return String((err as { stderr: Buffer }).stderr);
  }
  return '';
}

describe('loading the addon', () => {
  // A copy of the package's JS with no build/ folder: what an install without scripts leaves.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-noaddon-'));
  before(() => {
    fs.cpSync(path.join(ROOT, 'dist', 'lib'), path.join(dir, 'dist', 'lib'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('names the commands to build a missing addon instead of the paths tried', () => {
    const stderr = loadError(dir);
    assert.match(stderr, /guided-diffusion: the native addon is not built \(build\/Release\/guided_diffusion\.node is missing\)/);
    assert.match(stderr, /`npm install-scripts approve guided-diffusion` and then `npm rebuild guided-diffusion`/);
    assert.doesNotMatch(stderr, /Could not locate the bindings file/);
  });

  it('says the same for a GD_ADDON_PATH that does not exist', () => {
    const missing = path.join(dir, 'nowhere', 'guided_diffusion.node');
    const stderr = loadError(dir, { GD_ADDON_PATH: missing });
    assert.ok(stderr.includes(`guided-diffusion: the native addon is not built (${missing} is missing)`), stderr);
  });

  it('keeps the loader error of an addon that exists but cannot load', () => {
    const bad = path.join(dir, 'broken.node');
    fs.writeFileSync(bad, 'not a shared object');
    const stderr = loadError(dir, { GD_ADDON_PATH: bad });
    assert.match(stderr, /invalid ELF header|file too short/);
    assert.doesNotMatch(stderr, /npm rebuild/);
  });
});
