"""Per-op overhead in Python torch, the other half of bench/op_overhead.ts.

`python3 bench/op_overhead.py '{"threads": 2, "scale": 1.0}'` prints one line
`BENCH_RESULT {json}` with the median ns per op of each case (the same cases, by name, as
op_overhead.ts times on our side).
"""

import json
import resource
import sys
import time

import torch


def median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def time_op(fn, iterations, repeats=5):
    for _ in range(max(1, iterations // 10)):
        fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(iterations):
            fn()
        runs.append((time.perf_counter_ns() - t0) / iterations)
    return median(runs)


def main():
    spec = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    threads = spec.get("threads", 2)
    scale = spec.get("scale", 1.0)
    torch.set_num_threads(threads)
    a = torch.ones(1, 1)
    b = torch.ones(1, 1)
    m1 = torch.randn(64, 64)
    m2 = torch.randn(64, 64)
    acc = torch.zeros(1, 1)
    n_small = int(200_000 * scale)
    n_mat = int(20_000 * scale)
    results = {
        "add": time_op(lambda: a.add(b), n_small),
        "add-gc": time_op(lambda: a.add(b), n_small),  # Python frees by refcount either way
        "add_": time_op(lambda: acc.add_(b), n_small),
        "numel": time_op(lambda: a.numel(), n_small),
        "matmul64": time_op(lambda: m1.matmul(m2), n_mat),
    }
    r = resource.getrusage(resource.RUSAGE_SELF)
    print("BENCH_RESULT " + json.dumps({
        "nsPerOp": results,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpuMs": (r.ru_utime + r.ru_stime) * 1000.0,
    }), flush=True)


if __name__ == "__main__":
    main()
