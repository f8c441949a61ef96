"""Exporting PyTorch models for guided-diffusion (the TypeScript package).

guided-diffusion loads two kinds of files:
  * TorchScript checkpoints (`jit.load('unet.pt')`): the model's code and weights. Any module
    works as the diffusion model if its forward is forward(x, t) or forward(x, t, x_self_cond)
    and returns a tensor shaped like x; a noise-aware classifier is forward(x, t) -> logits.
  * safetensors weights (`new Unet({...}).loadStateDict('unet.safetensors')`): a state_dict of
    denoising-diffusion-pytorch's guided_diffusion.Unet, whose parameter names our native
    Unet shares. Data only: the safe way to ship weights.

Run:  python3 scripts/export_for_guided_diffusion.py OUT_DIR
It builds a small Unet-like model and a noise-aware classifier here (replace them with your
trained ones), then writes OUT_DIR/unet.pt, OUT_DIR/classifier.pt and, when the
denoising_diffusion_pytorch package is installed, OUT_DIR/unet.safetensors from its Unet.
Then, in TypeScript:

    const model = jit.load('OUT_DIR/unet.pt');
    const classifier = jit.load('OUT_DIR/classifier.pt');
    const diffusion = new GaussianDiffusion(model, { imageSize: 32, timesteps: 1000 });
    await diffusion.sample({ batchSize: 4, condFn: classifierGuidance,
                             guidanceKwargs: { classifier, y: torch.tensor([0, 1, 2, 3]) } });
"""
import os
import sys

import torch
from torch import nn


class TinyDenoiser(nn.Module):
    """Stands in for your trained diffusion model: forward(x, t) -> same shape as x."""

    def __init__(self, channels: int = 3, width: int = 32):
        super().__init__()
        self.channels = channels  # guided-diffusion reads this attribute when present
        self.time = nn.Linear(1, width)
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.time(t.float()[:, None] / 1000)[:, :, None, None]
        return self.out(torch.nn.functional.silu(h))


class NoisyClassifier(nn.Module):
    """Stands in for your noise-aware classifier: forward(x, t) -> logits (B, classes)."""

    def __init__(self, channels: int = 3, num_classes: int = 10, width: int = 32):
        super().__init__()
        self.num_classes = num_classes  # read by guided-diffusion to check labels
        self.conv = nn.Conv2d(channels, width, 3, padding=1)
        self.time = nn.Linear(1, width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(self.conv(x)).mean((2, 3))
        return self.head(h + self.time(t.float()[:, None] / 1000))


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    model = TinyDenoiser().eval()
    classifier = NoisyClassifier().eval()
    # torch.jit.script keeps control flow; torch.jit.trace records one run (fine for a Unet
    # whose forward has no data-dependent branches): both load in guided-diffusion.
    torch.jit.script(model).save(os.path.join(out_dir, "unet.pt"))
    torch.jit.script(classifier).save(os.path.join(out_dir, "classifier.pt"))
    print("wrote", os.path.join(out_dir, "unet.pt"), "and", os.path.join(out_dir, "classifier.pt"))
    try:
        from denoising_diffusion_pytorch.guided_diffusion import Unet
        from safetensors.torch import save_file
    except ImportError:
        print("(denoising_diffusion_pytorch or safetensors not installed: no unet.safetensors)")
        return
    unet = Unet(dim=64, dim_mults=(1, 2, 4, 8))
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, os.path.join(out_dir, "unet.safetensors"))
    print("wrote", os.path.join(out_dir, "unet.safetensors"), "(load with new Unet({ dim: 64, dimMults: [1, 2, 4, 8] }))")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "exported")
