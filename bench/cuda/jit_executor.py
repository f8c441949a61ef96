"""Python side of bench/cuda/jit_executor.ts: how TorchScript's executor settings change the
cost of the classifier gradient (forward + backward) and of the Unet forward on CUDA, for the
TorchScript files the TypeScript side wrote. One variant per process (the settings are global).
  python3 bench/cuda/jit_executor.py VARIANT classifier.pt unet.pt BATCH SIZE
Prints one JSON object; variant 'profile' prints the profiler's top ops instead."""
import json
import sys
import time

import numpy as np
import torch


def median_ms(fn, warmup=5, reps=30):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def main():
    variant, cls_path, unet_path, batch, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    if variant == "no-fuser":
        torch._C._jit_set_texpr_fuser_enabled(False)
    elif variant == "no-gpu-fusion":
        torch._C._jit_override_can_fuse_on_gpu(False)
    elif variant == "legacy-executor":
        torch._C._jit_set_profiling_executor(False)
    elif variant == "threads-4":
        torch.set_num_threads(4)
    classifier = torch.jit.load(cls_path, map_location="cuda").eval()
    unet = torch.jit.load(unet_path, map_location="cuda").eval()
    x = torch.randn(batch, 1, size, size, device="cuda")
    if variant == "x-large":  # what a guided DDIM run with random weights drifts to
        x = x * 1000
    t = torch.full((batch,), 500, device="cuda", dtype=torch.long)
    y = torch.arange(batch, device="cuda") % 10

    def grad():
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            logp = torch.log_softmax(classifier(xi, t), -1)
            return torch.autograd.grad(logp[torch.arange(batch, device="cuda"), y].sum(), xi)[0]

    def forward():
        with torch.no_grad():
            return unet(x, t)

    no_opt = variant == "no-optimizer"
    if variant == "profile":
        for _ in range(5):
            grad()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                grad()
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=15))
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=10))
        return
    with torch.jit.optimized_execution(not no_opt):
        out = {"classifierGradMs": median_ms(grad), "unetForwardMs": median_ms(forward)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
