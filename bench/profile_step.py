"""Where one guided step's time goes, op by op, on both sides of a bench row.

Run by bench/run.ts (case `profile`) as `python3 bench/profile_step.py '<SampleSpec JSON>'`.
Profiles, with torch.profiler on the CPU, steps made of one Unet forward (no grad) and one
classifier guidance gradient (forward + backward to x), as the samplers make them:
- "ours": our TorchScript Unet and classifier loaded with torch.jit.load: the same graphs,
  run by the same TorchScript executor and ATen kernels as our addon's sampling thread;
- "python": the reference Unet run eagerly (docs/reference-unet.md) and the seed's
  classifier_cond_fn, as bench/python_sampler.py runs them.
Prints one line `BENCH_RESULT {json}`: per side, ms per step, and the top ops by self time
with their share, plus the same time summed by kind (convolution, its backward, matmul,
normalization, softmax, elementwise, copies and layout, other).
"""

import json
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import python_sampler as ps  # noqa: E402  the Python mirror's Unet and cond_fn

# Kinds of ops, by the op's name without its namespace: the first kind whose words one of
# the name's "_"-separated words matches; backward ops apart.
KINDS = [
    ("convolution", {"conv2d", "convolution", "conv"}),
    ("matmul (einsum, bmm, mm, linear)", {"einsum", "bmm", "mm", "matmul", "addmm", "linear", "baddbmm"}),
    ("normalization (RMSNorm: F.normalize, or square, sum, sqrt, clamp_min; GroupNorm)", {"norm", "normalize", "clamp", "min", "square", "sqrt"}),
    ("softmax", {"softmax"}),
    ("copies and layout (copy_, clone, cat, pixel_unshuffle, upsample, views)", {"copy", "contiguous", "clone", "to", "cat", "unshuffle", "upsample", "nearest2d", "reshape", "view", "permute", "transpose", "empty", "zeros", "fill", "expand", "strided", "resize", "unsqueeze", "squeeze", "slice", "select", "narrow", "chunk", "split", "unsafe", "detach", "alias", "t", "stack", "unbind", "index", "pad", "constant"}),
    ("elementwise and reductions (mul, add, silu, gelu, ...)", {"mul", "add", "addcmul", "sub", "div", "silu", "gelu", "sigmoid", "exp", "sin", "cos", "rsqrt", "pow", "neg", "where", "sum", "mean", "gather", "scatter", "ones", "like", "full", "arange", "sort", "rsub", "scalar", "tensor", "item", "local", "dense"}),
]


def kind_of(name):
    words = set(name.split("::")[-1].strip("_").split("_"))
    if "backward" in words or "Backward0" in name:
        return "convolution backward" if words & {"convolution", "conv"} else "other backward (softmax, norm, elementwise)"
    for kind, keys in KINDS:
        if words & keys:
            return kind
    return "other"


def profiled(step, steps):
    for _ in range(3):  # the TorchScript executor profiles, then optimizes
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    wall = (time.perf_counter() - t0) * 1000.0 / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = []
    for e in prof.key_averages():
        if e.self_cpu_time_total <= 0:
            continue
        rows.append({"name": e.key, "selfMs": e.self_cpu_time_total / 1000.0 / steps, "calls": e.count / steps})
    total = sum(r["selfMs"] for r in rows)
    for r in rows:
        r["share"] = r["selfMs"] / total if total else 0.0
    rows.sort(key=lambda r: -r["selfMs"])
    kinds = {}
    for r in rows:
        k = kind_of(r["name"])
        kinds[k] = kinds.get(k, 0.0) + r["selfMs"]
    kinds = sorted(({"kind": k, "selfMs": v, "share": v / total if total else 0.0} for k, v in kinds.items()), key=lambda r: -r["selfMs"])
    return {"msPerStep": wall, "profiledMsPerStep": total, "top": rows[:12], "kinds": kinds}


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    torch.backends.nnpack.set_flags(False)
    autocast = {"bfloat16": torch.bfloat16}.get(spec.get("autocast"))
    scripted = torch.jit.load(spec["files"]["unetPt"]).eval()
    classifier = torch.jit.load(spec["files"]["classifierPt"]).eval()
    shape = (spec["batch"], spec["channels"], spec["imageSize"], spec["imageSize"])
    torch.manual_seed(0)
    x = torch.randn(shape)
    t = torch.full((shape[0],), spec["timesteps"] // 2, dtype=torch.long)
    y = torch.tensor(spec["y"], dtype=torch.long)
    steps = spec.get("profileSteps", 5)

    def step_with(unet):
        def step():
            with torch.no_grad():
                if autocast is not None:
                    with torch.autocast("cpu", dtype=autocast):
                        eps = unet(x, t).float()
                else:
                    eps = unet(x, t)
            g = ps.classifier_cond_fn(x, t, classifier, y, spec["classifierScale"])
            return eps, g

        return step

    # Two rounds, the sides alternating; each side keeps its quieter round (lower wall time):
    # a burst of other load during one side's profile would otherwise read as its cost.
    sides = {"ours": step_with(scripted), "python": step_with(ps.EagerUnet(scripted))}
    best = {}
    for _ in range(2):
        for name, step in sides.items():
            run = profiled(step, steps)
            if name not in best or run["msPerStep"] < best[name]["msPerStep"]:
                best[name] = run
    out = {
        "side": "python",
        "ours": best["ours"],
        "python": best["python"],
        "threads": torch.get_num_threads(),
        "cpuMs": ps.cpu_ms(),
    }
    print("BENCH_RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
