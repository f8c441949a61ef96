// Every fixture says what made it (issue 21 F24): the torch version and, where the numbers come
// from someone else's code, that code's repository and commit. Most directories carry a
// provenance.json written by scripts/fixtures/provenance.py, which reran their generators and
// compared the result with the committed files; fast-samplers and cpu-autocast record the same
// in their own metadata (their generators need files this machine may not have), and the
// reference case in its provenance.json (scripts/fixtures/reference_case.py --record).
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { FIXTURES } from './helpers';

const COMMIT = /^[0-9a-f]{40}$/;
const TORCH = /^\d+\.\d+\.\d+/;
const json = (...p: string[]): any => JSON.parse(fs.readFileSync(path.join(FIXTURES, ...p), 'utf8'));
// Directories whose numbers come from a reference's code, and which one.
const REFERENCE: Record<string, RegExp> = {
  openai: /openai\/guided-diffusion$/,
  'openai-sampling': /openai\/guided-diffusion$/,
  'openai-training': /openai\/guided-diffusion$/,
  'openai-resume': /openai\/guided-diffusion$/,
  'openai-classifier': /openai\/guided-diffusion$/,
  'openai-fp16': /openai\/guided-diffusion$/,
  'openai-attention': /openai\/guided-diffusion$/,
  lucidrains: /lucidrains\/denoising-diffusion-pytorch$/,
  'lucidrains-cfg': /lucidrains\/denoising-diffusion-pytorch$/,
  repaint: /andreas128\/RePaint$/,
};

describe('fixture provenance', () => {
  const dirs = fs.readdirSync(FIXTURES).filter((d) => fs.statSync(path.join(FIXTURES, d)).isDirectory()).sort();

  it('every fixture directory records its torch version (and its reference commit where it has one)', () => {
    for (const d of dirs) {
      if (d === 'fast-samplers') {
        const c = json(d, 'cases.json');
        assert.match(c.torch, TORCH, d);
        for (const [name, commit] of Object.entries(c.commits)) assert.match(commit as string, COMMIT, `${d}: ${name}`);
      } else if (d === 'cpu-autocast') {
        const r = json(d, 'reference.json');
        assert.match(r.torch, TORCH, d);
        assert.match(r.reference.commit, COMMIT, d);
      } else if (d === 'reference-case') {
        const r = json(d, 'provenance.json').regenerated;
        assert.match(r.torch, TORCH, d);
        assert.match(r.reference.commit, COMMIT, d);
      } else {
        const p = json(d, 'provenance.json');
        assert.match(p.torch, TORCH, d);
        assert.ok(p.generators.length > 0, d);
        if (REFERENCE[d]) {
          assert.match(p.reference.repository, REFERENCE[d], d);
          assert.match(p.reference.commit, COMMIT, d);
        } else {
          assert.strictEqual(typeof p.reference, 'string', `${d}: says why there is no reference commit`);
        }
      }
    }
  });

  it('provenance.json covers every file of its directory, and a rerun of the generators gave each again', () => {
    for (const d of dirs) {
      if (!fs.existsSync(path.join(FIXTURES, d, 'provenance.json')) || d === 'reference-case') continue;
      const p = json(d, 'provenance.json');
      const files = fs.readdirSync(path.join(FIXTURES, d)).filter((f) => f !== 'provenance.json' && f !== 'README.md').sort();
      assert.deepStrictEqual(Object.keys(p.files).sort(), files, d);
      const counts: Record<string, number> = {};
      for (const [f, v] of Object.entries(p.files) as [string, { rerun: string }][]) {
        assert.match(v.rerun, /^(identical|same content|same values)/, `${d}/${f}: ${v.rerun}`);
        const k = v.rerun.split(' (')[0];
        counts[k] = (counts[k] ?? 0) + 1;
      }
      console.log(`      ${d}: ${Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(', ')} (torch ${p.torch}, checked at ${p.checked.at})`);
    }
  });
});
