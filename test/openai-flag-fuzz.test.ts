// openai.createModel / createClassifier accept the flag sets their create_model /
// create_classifier accept (issue 21 B9): 240 random combinations of widths, channel_mult,
// attention resolutions, heads and pools, each built by their code and run once
// (scripts/fixtures/openai_flag_fuzz.py, test/fixtures/openai/flag-fuzz.json). Where theirs builds
// and runs, ours builds and gives the same output shape; where theirs refuses, ours refuses;
// where theirs builds a network whose first forward fails (a num_heads that does not divide an
// attention width), ours refuses when it is built, naming the width.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openai, torch } from '../lib';
import { FIXTURES } from './helpers';

interface FuzzCase {
  kind: 'model' | 'classifier';
  flags: Record<string, string | number | boolean>;
  builds: boolean;
  runs: boolean;
  error?: string;
}

const FUZZ: { commit: string; torch: string; cases: FuzzCase[] } = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'openai', 'flag-fuzz.json'), 'utf8'));

describe('openai flags: we accept exactly what their create_model / create_classifier accept', function () {
  this.timeout(300000);

  it(`${FUZZ.cases.length} random flag sets (their code at ${FUZZ.commit.slice(0, 7)}, torch ${FUZZ.torch})`, () => {
    const mismatches: string[] = [];
    const tally = { run: 0, refused: 0, refusedEarlier: 0 };
    for (const [i, c] of FUZZ.cases.entries()) {
      const build = () => (c.kind === 'model' ? openai.createModel(c.flags) : openai.createClassifier(c.flags));
      let ours: ReturnType<typeof build> | undefined;
      let error = '';
      try {
        ours = build();
      } catch (e) {
        error = (e as Error).message;
      }
      const label = `case ${i} (${c.kind} ${JSON.stringify(c.flags)})`;
      if (c.runs) {
        if (ours === undefined) {
          mismatches.push(`${label}: theirs builds and runs, ours refuses: ${error}`);
          continue;
        }
        // The count that bounds what may be built (models/openai_size.cc) is the exact one.
        const counted = c.kind === 'model' ? openai.UNetModel.parameterCount(openai.modelOptions(c.flags)) : openai.EncoderUNetModel.parameterCount(openai.classifierOptions(c.flags));
        const held = ours.parameters().reduce((n, p) => n + p.numel, 0);
        if (counted !== held) mismatches.push(`${label}: parameterCount ${counted}, the built network holds ${held}`);
        const size = c.flags.image_size as number;
        torch.tidy(() => {
          const x = torch.zeros([2, 3, size, size]);
          const t = torch.zeros([2], { dtype: 'int64' });
          const out = c.kind === 'model' ? (ours as openai.UNetModel).forward(x, t, c.flags.class_cond ? torch.zeros([2], { dtype: 'int64' }) : undefined) : ours!.forward(x, t);
          const expected = c.kind === 'model' ? [2, c.flags.learn_sigma ? 6 : 3, size, size] : [2, 1000];
          if (out.shape.join(',') !== expected.join(',')) mismatches.push(`${label}: output shape [${out.shape}], theirs [${expected}]`);
          return [];
        });
        ours.dispose();
        tally.run++;
      } else if (ours !== undefined) {
        mismatches.push(`${label}: theirs ${c.builds ? 'fails its first forward' : 'refuses'} (${c.error}), ours builds`);
        ours.dispose();
      } else if (c.builds) {
        tally.refusedEarlier++;
        if (!/attention at a width of \d+ channels, which is not divisible by num_heads(_upsample)? \d+/.test(error)) {
          mismatches.push(`${label}: theirs fails its first forward (${c.error}); ours refuses with another reason: ${error}`);
        }
      } else {
        tally.refused++;
      }
    }
    console.log(`      ${tally.run} built and run as theirs, ${tally.refused} refused as theirs, ${tally.refusedEarlier} refused where theirs fails its first forward; ${mismatches.length} mismatches`);
    assert.deepStrictEqual(mismatches, []);
    assert.ok(tally.run >= 80 && tally.refused >= 80 && tally.refusedEarlier >= 3, JSON.stringify(tally));
  });

  it('options that would hold more parameters than the machine has memory are refused before anything is built', () => {
    const started = Date.now();
    // openai's own code counts 44 GiB for num_channels 8192; num_res_blocks 1e6 at 128 channels.
    const wide = { image_size: 64, num_channels: 8192, num_res_blocks: 3, attention_resolutions: '32,16,8', num_head_channels: 64 };
    assert.ok(openai.UNetModel.parameterCount(openai.modelOptions(wide)) > 1e10);
    const deep = { image_size: 64, num_channels: 128, num_res_blocks: 1e6, attention_resolutions: '32,16,8' };
    for (const flags of [wide, deep]) {
      const count = openai.UNetModel.parameterCount(openai.modelOptions(flags));
      const memory = os.totalmem();
      if (count * 4 <= memory) continue; // a machine with room for it builds it
      assert.throws(() => openai.createModel(flags), {
        message: /^UNetModel: these options make [\d.e+]+ parameters \(\d+\.\d GiB in float32\), more than this machine's \d+\.\d GiB of memory$/,
      });
    }
    assert.throws(() => openai.createClassifier({ image_size: 64, classifier_width: 8192 * 4, classifier_depth: 4 }), { message: /^EncoderUNetModel: these options make [\d.e+]+ parameters/ });
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });

  it("the issue's classifier: model_channels 32, channel_mult 1,2,2, attention at ds 2 and 4, num_head_channels 64 builds as theirs does", () => {
    const c = new openai.EncoderUNetModel({
      image_size: 16, in_channels: 3, model_channels: 32, out_channels: 10, num_res_blocks: 1, attention_resolutions: [2, 4],
      channel_mult: [1, 2, 2], num_head_channels: 64, pool: 'attention',
    });
    const logits = c.forward(torch.zeros([2, 3, 16, 16]), torch.tensor([0, 5]));
    assert.deepStrictEqual(logits.shape, [2, 10]);
    c.dispose();
    // Attention at ds 1 (width 32) is where 64 channels a head cannot split.
    assert.throws(
      () => new openai.EncoderUNetModel({ image_size: 16, in_channels: 3, model_channels: 32, out_channels: 10, num_res_blocks: 1, attention_resolutions: [1], channel_mult: [1, 2, 2], num_head_channels: 64 }),
      { message: 'EncoderUNetModel: attention at a width of 32 channels, which is not divisible by num_head_channels 64' },
    );
  });
});
