// Attention over 1024 tokens (a 32x32 level), where our QKVAttention runs the fused kernel of
// scaled_dot_product_attention instead of their einsum and softmax: outputs and input gradients
// against their code (scripts/fixtures/openai_attention.py, their commit and torch version in
// cases.json), both head orders, UNetModel and EncoderUNetModel; and the same nets under
// bfloat16 autocast, which the fused kernel also takes.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { loadSafetensors, Module, openai, Tensor, torch } from '../lib';
import { FIXTURES, printMeasured } from './helpers';

const DIR = path.join(FIXTURES, 'openai-attention');
interface Case {
  name: string;
  kind: 'unet' | 'encoder';
  kwargs: Record<string, unknown>;
}
const { cases } = JSON.parse(fs.readFileSync(path.join(DIR, 'cases.json'), 'utf8')) as { cases: Case[] };

function loaded(c: Case): { net: Module; io: Record<string, Tensor> } {
  const io = loadSafetensors(path.join(DIR, `${c.name}.safetensors`));
  const net = c.kind === 'unet' ? new openai.UNetModel(c.kwargs as never) : new openai.EncoderUNetModel(c.kwargs as never);
  const weights: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(io)) if (k.startsWith('w.')) weights[k.slice(2)] = v;
  net.loadStateDict(weights);
  return { net: net.eval(), io };
}

/** max |a - b| / max |b|. */
function relErr(a: Tensor, b: Tensor): number {
  return torch.tidy(() => (a.sub(b).abs().max().item() as number) / (b.abs().max().item() as number));
}

/** The fixture's objective: sum(out * r) for the UNet, their cond_fn's log p(y | x) for the classifier. */
function objective(c: Case, out: Tensor, io: Record<string, Tensor>): Tensor {
  if (c.kind === 'unet') return out.mul(io.r).sum();
  const picked = out.logSoftmax(-1).gather(1, io.y.view([-1, 1]));
  return picked.sum();
}

describe('openai attention over 1024 tokens (the fused kernel) against their code', function () {
  this.timeout(120_000);

  for (const c of cases) {
    it(`${c.name}: output and input gradient`, () => {
      const before = torch.memory().tensors;
      const { net, io } = loaded(c);
      const [outErr, gradErr] = torch.tidy(() => {
        const x = io.x.clone().requiresGrad_();
        const out = net.forward(x, io.t);
        const [grad] = torch.autograd.grad(objective(c, out, io), [x]);
        return [relErr(out.detach(), io.out), relErr(grad!, io.grad)];
      });
      printMeasured(`${c.name} output, max error relative to max |out|`, outErr, 1e-5);
      printMeasured(`${c.name} input gradient, max error relative to max |grad|`, gradErr, 1e-5);
      assert.ok(outErr <= 1e-5 && gradErr <= 1e-5, `output ${outErr}, gradient ${gradErr}`);
      net.dispose();
      torch.dispose(Object.values(io));
      assert.strictEqual(torch.memory().tensors, before);
    });
  }

  it('UNetModel under bfloat16 autocast: one model call near float32', () => {
    const c = cases.find((k) => k.name === 'unet_new')!;
    const { net, io } = loaded(c);
    const call = (autocast?: 'bfloat16'): Promise<Tensor> => {
      const diffusion = openai.createGaussianDiffusion(net, { diffusion_steps: 1000, learn_sigma: true, timestep_respacing: '1' }, autocast ? { autocast } : {});
      return diffusion.sample({ sampler: 'ddim', batchSize: 2, seed: 5 });
    };
    return Promise.all([call(), call('bfloat16')]).then(([f32, bf16]) => {
      const err = torch.tidy(() => f32.sub(bf16).abs().max().item() as number);
      printMeasured('one DDIM step from the same noise, bfloat16 autocast against float32, max difference', err, 0.1);
      assert.ok(Number.isFinite(err) && err > 0 && err <= 0.1, `difference ${err}`);
      torch.dispose([f32, bf16, ...Object.values(io)]);
      net.dispose();
    });
  });
});
