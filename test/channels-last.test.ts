// GaussianDiffusionOptions.memoryFormat 'channelsLast': the model gets its input in NHWC, and
// the attention blocks of openai's nets hand NHWC on, so that every convolution runs oneDNN's
// NHWC kernels. Only the rounding may differ from the default layout; outputs are contiguous.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { loadSafetensors, openai, Tensor, torch } from '../lib';
import { FIXTURES, printMeasured } from './helpers';

const DIR = path.join(FIXTURES, 'openai-attention');

describe('memoryFormat channelsLast', function () {
  this.timeout(120_000);

  it('an openai UNetModel with attention at 32x32 predicts as in the default layout, to rounding; contiguous is the default', () => {
    const before = torch.memory().tensors;
    const { cases } = JSON.parse(fs.readFileSync(path.join(DIR, 'cases.json'), 'utf8'));
    const c = cases.find((k: { name: string }) => k.name === 'unet_new');
    const io = loadSafetensors(path.join(DIR, 'unet_new.safetensors'));
    const net = new openai.UNetModel(c.kwargs);
    const weights: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(io)) if (k.startsWith('w.')) weights[k.slice(2)] = v;
    net.loadStateDict(weights);
    net.eval();
    const flags = { diffusion_steps: 1000, learn_sigma: true };
    // The model's eps at t = 500 (a sample from t = 999 would magnify the rounding by 1/sqrt(alpha_bar)).
    const eps = (memoryFormat?: 'contiguous' | 'channelsLast'): Tensor => torch.tidy(() =>
      openai.createGaussianDiffusion(net, flags, memoryFormat ? { memoryFormat } : {}).predict(io.x, torch.full([io.x.shape[0]], 500, { dtype: 'int64' })).eps);
    const plain = eps();
    const contiguous = eps('contiguous');
    const nhwc = eps('channelsLast');
    const [same, err] = torch.tidy(() => [
      contiguous.sub(plain).abs().max().item() as number,
      (nhwc.sub(plain).abs().max().item() as number) / (plain.abs().max().item() as number),
    ]);
    printMeasured('eps at t = 500, channelsLast against the default layout, max difference relative to max |eps|', err, 1e-5);
    assert.strictEqual(same, 0, "'contiguous' is the default");
    // Exactly 0 would mean the layout never reached the convolutions: oneDNN's NHWC kernels
    // sum in another order than its NCHW ones.
    assert.ok(Number.isFinite(err) && err > 0 && err <= 1e-5, `relative difference ${err}`);
    torch.dispose([plain, contiguous, nhwc, ...Object.values(io)]);
    net.dispose();
    assert.strictEqual(torch.memory().tensors, before);
  });

  it('rejects an unknown layout, naming it', () => {
    const net = new openai.UNetModel({ image_size: 16, in_channels: 3, model_channels: 32, out_channels: 3, num_res_blocks: 1, attention_resolutions: [2], channel_mult: [1, 2] });
    assert.throws(() => openai.createGaussianDiffusion(net, { diffusion_steps: 1000 }, { memoryFormat: 'nhwc' as never }),
      /memoryFormat must be 'contiguous' or 'channelsLast'; got 'nhwc'/);
    net.dispose();
  });
});
