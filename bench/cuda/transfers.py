"""Python side of bench/cuda/transfers.ts: host <-> CUDA copies of float32 arrays, timed as
the TypeScript side times ours. Prints one JSON object: {case: median ms}.
  python3 bench/cuda/transfers.py '[65536, 4194304]'"""
import json
import sys
import time

import numpy as np
import torch


def median_ms(fn, reps=20):
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def main():
    out = {}
    for n in json.loads(sys.argv[1]):
        host = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
        dev = torch.from_numpy(host).to("cuda")
        # Upload, then a reduction read back: the copy is done when the number arrives.
        out[f"h2d-{n}-pageable"] = median_ms(lambda: torch.from_numpy(host).to("cuda").sum().item())
        out[f"h2d-{n}-pinned"] = median_ms(
            lambda: torch.from_numpy(host).pin_memory().to("cuda", non_blocking=True).sum().item())
        out[f"d2h-{n}"] = median_ms(lambda: dev.cpu().numpy())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
