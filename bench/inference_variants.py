"""Which TorchScript inference transforms help the shipped Unet on this CPU?

    python3 bench/inference_variants.py [UNET_PT] [--batch 16] [--threads 2]

Times one no-grad forward (median of 7, after 3 warm-up calls) of the same scripted Unet as
loaded, under inference_mode, frozen (torch.jit.freeze), frozen and optimized for inference
(torch.jit.optimize_for_inference), and with a channels-last input, all in one process, and
prints each against the plain module. LibTorch runs the same passes (torch::jit::freeze,
optimize_for_inference), so what is slower here is slower for our addon too.
"""
import argparse
import os
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_ms(fn, x, t):
    with torch.no_grad():
        for _ in range(3):
            fn(x, t)
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            fn(x, t)
            times.append((time.perf_counter() - t0) * 1000.0)
    return sorted(times)[3]


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

    base = median_ms(model, x, t)
    rows = [("plain (what the addon runs)", base)]
    with torch.inference_mode():
        rows.append(("inference_mode", median_ms(model, x, t)))
    rows.append(("torch.jit.freeze", median_ms(torch.jit.freeze(model), x, t)))
    rows.append(("freeze + optimize_for_inference", median_ms(torch.jit.optimize_for_inference(torch.jit.freeze(model)), x, t)))
    rows.append(("channels-last input", median_ms(model, x.contiguous(memory_format=torch.channels_last), t)))
    print(f"Unet forward, batch {args.batch}, {size}x{size}, {args.threads} threads, torch {torch.__version__}")
    print("| variant | ms | vs plain |")
    print("| --- | ---: | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {base / ms:.2f}x |")


if __name__ == "__main__":
    main()
