"""Which TorchScript inference transforms help the shipped Unet on this CPU?

    python3 bench/inference_variants.py [UNET_PT] [--batch 16] [--threads 2]

Times one no-grad forward of the same scripted Unet as loaded, under inference_mode, frozen
(torch.jit.freeze), frozen and optimized for inference (torch.jit.optimize_for_inference),
with a channels-last input, and with channels-last weights and input, all in one process,
and prints each against the plain module. The variants are timed round-robin (3 warm-up
calls each, then 7 rounds of one call of each, best per variant), so that a drift in the
machine's load hits them alike: an earlier version timed them one after another and read a
drift that began after the second variant as a 5x slowdown of every later one. Also counts
the layout conversions optimize_for_inference inserts, and says whether a classifier so
optimized still gives the guidance gradient (it does not: prepacked MKLDNN graphs drop
autograd). LibTorch runs the same passes (torch::jit::freeze, optimize_for_inference).
"""
import argparse
import os
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_ms(variants, rounds=7):
    """Best time per variant, the variants interleaved round by round."""
    with torch.no_grad():
        for fn, x, t in variants.values():
            for _ in range(3):
                fn(x, t)
        best = {name: float("inf") for name in variants}
        for _ in range(rounds):
            for name, (fn, x, t) in variants.items():
                t0 = time.perf_counter()
                fn(x, t)
                best[name] = min(best[name], (time.perf_counter() - t0) * 1000.0)
    return best


class InferenceMode:
    def __init__(self, model):
        self.model = model

    def __call__(self, x, t):
        with torch.inference_mode():
            return self.model(x, t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("unet", nargs="?", default=os.path.join(ROOT, "models", "fashion-mnist", "unet.pt"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.nnpack.set_flags(False)
    model = torch.jit.load(args.unet).eval()
    size = 32
    x = torch.randn(args.batch, model.channels, size, size)
    t = torch.full((args.batch,), 500, dtype=torch.long)

    cl = x.contiguous(memory_format=torch.channels_last)
    optimized = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.load(args.unet).eval()))
    kinds = [n.kind() for n in optimized.graph.nodes()]
    variants = {
        "plain (what the addon runs)": (model, x, t),
        "inference_mode": (InferenceMode(model), x, t),
        "torch.jit.freeze": (torch.jit.freeze(torch.jit.load(args.unet).eval()), x, t),
        "freeze + optimize_for_inference": (optimized, x, t),
        "channels-last input": (model, cl, t),
        "channels-last weights and input": (torch.jit.load(args.unet).eval().to(memory_format=torch.channels_last), cl, t),
    }
    best = best_ms(variants)
    base = best["plain (what the addon runs)"]
    rows = list(best.items())
    print(f"Unet forward, batch {args.batch}, {size}x{size}, {args.threads} threads, torch {torch.__version__}")
    print("| variant | ms | vs plain |")
    print("| --- | ---: | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {base / ms:.2f}x |")
    print(
        f"optimize_for_inference: {kinds.count('prim::mkldnn_convolution')} prepacked convolutions, "
        f"{kinds.count('aten::to_mkldnn')} to_mkldnn and {kinds.count('aten::to_dense')} to_dense conversions around them "
        "(RMSNorm, SiLU, attention and the rest have no MKLDNN kernels)"
    )
    x_in = x.detach().requires_grad_(True)
    try:
        with torch.enable_grad():
            out = optimized(x_in, t)
            torch.autograd.grad(out.sum(), x_in)
        print("optimize_for_inference keeps the gradient to the input")
    except RuntimeError as err:
        print(f"optimize_for_inference drops the gradient to the input (guidance needs it): {str(err).splitlines()[0]}")


if __name__ == "__main__":
    main()
