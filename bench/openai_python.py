"""The Python side of bench/openai_nets.ts: openai/guided-diffusion's own code, from a checkout.

    python3 bench/openai_python.py prepare '<json>'   their nets with seeded weights, th.save'd
    python3 bench/openai_python.py sample '<json>'    guided DDIM as their classifier_sample.py
    python3 bench/openai_python.py profile '<json>'   one guided step op by op (torch.profiler)

The JSON (bench/openai_nets.ts, OpenAISpec): repo, modelFlags, classifierFlags (their flag
dicts), files {model, classifier}, batch, threads, steps (timed DDIM steps), warmupSteps,
classifierScale, seed, autocast (null or "bfloat16": the UNet's forward under torch.autocast
on the CPU), flops (also count one step's FLOPs), device ("cpu" or "cuda"), runs (set: whole
samples timed, as bench/cuda/openai_nets.ts asks). Prints one line `BENCH_RESULT {json}`.
"""

import json
import os
import resource
import sys
import time
import types

import torch as th
import torch.nn.functional as F

RSS_START_KIB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

mode, spec = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, spec["repo"])
# Their dist_util imports mpi4py and blobfile; sampling on one process needs neither.
for name in ("mpi4py", "blobfile"):
    sys.modules.setdefault(name, types.ModuleType(name))
from guided_diffusion.script_util import (  # noqa: E402
    classifier_defaults,
    create_classifier,
    create_model_and_diffusion,
    model_and_diffusion_defaults,
)

th.set_num_threads(spec["threads"])


def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu": (r.ru_utime + r.ru_stime) * 1000.0, "faults": r.ru_minflt, "wall": time.perf_counter() * 1000.0}


def emit(value):
    print("BENCH_RESULT " + json.dumps(value), flush=True)


def build(respacing):
    flags = model_and_diffusion_defaults()
    flags.update(spec["modelFlags"])
    flags["timestep_respacing"] = respacing
    model, diffusion = create_model_and_diffusion(**flags)
    cflags = classifier_defaults()
    cflags.update({k: v for k, v in spec["classifierFlags"].items() if k in cflags})
    classifier = create_classifier(**cflags)
    return model, diffusion, classifier


def prepare():
    th.manual_seed(spec["seed"])
    model, _, classifier = build("")
    # Every weight drawn: their zero_module'd output convs would make blocks the identity.
    with th.no_grad():
        for net in (model, classifier):
            for p in net.parameters():
                p.copy_(th.randn_like(p) * 0.02)
    th.save(model.state_dict(), spec["files"]["model"])
    th.save(classifier.state_dict(), spec["files"]["classifier"])
    emit({"cpuMs": usage()["cpu"]})


def guided_fns(model, classifier, y):
    """model_fn and cond_fn as their classifier_sample.py writes them."""
    autocast = spec.get("autocast")

    def model_fn(x, t, y=None):
        if autocast:
            with th.autocast("cpu", dtype=getattr(th, autocast)):
                return model(x, t, y).float()
        return model(x, t, y)

    def cond_fn(x, t, y=None):
        with th.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_probs = F.log_softmax(classifier(x_in, t), dim=-1)
            selected = log_probs[range(len(log_probs)), y.view(-1)]
            return th.autograd.grad(selected.sum(), x_in)[0] * spec["classifierScale"]

    return model_fn, cond_fn


DEVICE = th.device(spec.get("device") or "cpu")


def loaded(respacing):
    """As their classifier_sample.py: weights loaded, moved to the device, then convert_to_fp16."""
    model, diffusion, classifier = build(respacing)
    model.load_state_dict(th.load(spec["files"]["model"], map_location="cpu"))
    classifier.load_state_dict(th.load(spec["files"]["classifier"], map_location="cpu"))
    model.to(DEVICE)
    classifier.to(DEVICE)
    if spec["modelFlags"].get("use_fp16"):
        model.convert_to_fp16()
    if spec["classifierFlags"].get("classifier_use_fp16"):
        classifier.convert_to_fp16()
    return model.eval(), diffusion, classifier.eval()


def count_flops(model_fn, classifier, shape, y):
    from torch.utils.flop_counter import FlopCounterMode

    x = th.randn(shape)
    t = th.full((shape[0],), 500, dtype=th.long)
    with FlopCounterMode(display=False) as counter, th.no_grad():
        model_fn(x, t, y)
    unet = counter.get_total_flops()
    # backward(inputs=) instead of autograd.grad: FlopCounterMode's hooks refuse grad of a leaf.
    # Their attention blocks' gradient checkpointing (a custom autograd Function) trips the
    # counter's module hooks: counted without it, the step's FLOPs less their recompute.
    import guided_diffusion.unet as unet_module

    unet_module.checkpoint = lambda func, inputs, params, flag: func(*inputs)
    with FlopCounterMode(display=False) as counter, th.enable_grad():
        x_in = x.detach().requires_grad_(True)
        log_probs = F.log_softmax(classifier(x_in, t), dim=-1)
        log_probs[range(shape[0]), y.view(-1)].sum().backward(inputs=[x_in])
    a = th.randn(2048, 2048)
    peak = rate(lambda: a @ a, 2 * 2048**3)
    # The kernels a step's FLOPs run on: oneDNN's 3x3 convolution (the 64x64 level's 192
    # channels), and a 1x1 convolution (the 16x16 attention's qkv) as PyTorch runs it, which on
    # one thread at batch < 16 is MKL's sgemm, and through oneDNN for comparison.
    x3, w3 = th.randn(4, 192, 64, 64), th.randn(192, 192, 3, 3) * 0.02
    x1, w1 = th.randn(4, 576, 256), th.randn(1728, 576, 1) * 0.02
    with th.no_grad():
        conv3 = rate(lambda: F.conv2d(x3, w3, padding=1), 2 * 4 * 64 * 64 * 192 * 192 * 9)
        conv1 = rate(lambda: F.conv1d(x1, w1), 2 * 4 * 256 * 576 * 1728)
        conv1_onednn = rate(
            lambda: th.mkldnn_convolution(x1.unsqueeze(2), w1.unsqueeze(2), None, [0, 0], [1, 1], [1, 1], 1),
            2 * 4 * 256 * 576 * 1728,
        )
    return {
        "unetFlops": unet,
        "guidanceFlops": counter.get_total_flops(),
        "peakGflops": peak,
        "conv3x3Gflops": conv3,
        "conv1x1Gflops": conv1,
        "conv1x1OnednnGflops": conv1_onednn,
    }


def rate(fn, flop, reps=5):
    """GFLOP/s of fn: the best of reps after two warm-up calls."""
    fn()
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return flop / best / 1e9


def sample():
    steps, warm = spec["steps"], spec["warmupSteps"]
    model, diffusion, classifier = loaded(f"ddim{steps + warm}")
    size = spec["modelFlags"]["image_size"]
    shape = (spec["batch"], 3, size, size)
    th.manual_seed(spec["seed"])
    y = th.randint(0, 1000, (spec["batch"],))
    model_fn, cond_fn = guided_fns(model, classifier, y)
    t_start = usage()
    marks = []
    for _ in diffusion.ddim_sample_loop_progressive(
        model_fn, shape, clip_denoised=True, model_kwargs={"y": y}, cond_fn=cond_fn, device=th.device("cpu"), progress=False
    ):
        marks.append(usage())
    timed = marks[warm - 1 :] if warm > 0 else [t_start] + marks
    n = len(timed) - 1
    out = {
        "side": "python",
        "msPerStep": [(b["wall"] - a["wall"]) for a, b in zip(timed, timed[1:])],
        "cpuMsPerStep": (timed[-1]["cpu"] - timed[0]["cpu"]) / n,
        "faultsPerStep": (timed[-1]["faults"] - timed[0]["faults"]) / n,
        "warmupMs": timed[0]["wall"] - t_start["wall"],
        "rssStartKiB": RSS_START_KIB,
        "rssPeakKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "threads": th.get_num_threads(),
        "cpuMs": usage()["cpu"],
    }
    if spec.get("flops"):
        out["flops"] = count_flops(model_fn, classifier, shape, y)
    emit(out)


def sample_whole():
    """Whole samples of `steps` DDIM steps (as on CUDA), the first untimed; each ends with .cpu()."""
    steps = spec["steps"]
    model, diffusion, classifier = loaded(f"ddim{steps}")
    size = spec["modelFlags"]["image_size"]
    shape = (spec["batch"], 3, size, size)
    th.manual_seed(spec["seed"])
    y = th.randint(0, 1000, (spec["batch"],)).to(DEVICE)
    model_fn, cond_fn = guided_fns(model, classifier, y)

    def once():
        t0 = time.perf_counter()
        out = diffusion.ddim_sample_loop(
            model_fn, shape, clip_denoised=True, model_kwargs={"y": y}, cond_fn=cond_fn, device=DEVICE, progress=False
        )
        out.cpu()
        return (time.perf_counter() - t0) * 1000.0

    t_start = usage()
    warmup_ms = once()
    if DEVICE.type == "cuda":
        th.cuda.reset_peak_memory_stats()
    timed = usage()
    ms_per_step = [once() / steps for _ in range(spec["runs"])]
    end = usage()
    n = len(ms_per_step) * steps
    emit(
        {
            "side": "python",
            "msPerStep": ms_per_step,
            "cpuMsPerStep": (end["cpu"] - timed["cpu"]) / n,
            "faultsPerStep": (end["faults"] - timed["faults"]) / n,
            "warmupMs": warmup_ms,
            "rssStartKiB": RSS_START_KIB,
            "rssPeakKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "threads": th.get_num_threads(),
            "cpuMs": end["cpu"] - t_start["cpu"],
            "cudaPeakBytes": th.cuda.max_memory_allocated() if DEVICE.type == "cuda" else None,
        }
    )


def profile():
    """One guided step's parts, op by op (torch.profiler): a UNet forward (no grad) and the
    guidance gradient, for their eager nets and for ours (our TorchScript files loaded with
    torch.jit.load: the graphs and ATen kernels our addon runs), on the same weights."""
    from torch.profiler import ProfilerActivity, profile as th_profile

    model, _, theirs_classifier = loaded("")
    ours_model = th.jit.load(spec["files"]["oursModel"]).eval()
    ours_classifier = th.jit.load(spec["files"]["oursClassifier"]).eval()
    size = spec["modelFlags"]["image_size"]
    x = th.randn(spec["batch"], 3, size, size)
    t = th.full((spec["batch"],), 500, dtype=th.long)
    y = th.randint(0, 1000, (spec["batch"],))
    sides = []
    for side, net, cls in (("theirs (eager)", model, theirs_classifier), ("ours (TorchScript)", ours_model, ours_classifier)):
        model_fn, cond_fn = guided_fns(net, cls, y)

        def step():
            with th.no_grad():
                model_fn(x, t, y)
            cond_fn(x, t, y)

        step()
        step()  # TorchScript's profiling executor optimizes on the second run
        with th_profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        rows = [
            {"op": e.key, "selfMs": e.self_cpu_time_total / 1000.0, "calls": e.count}
            for e in prof.key_averages()
            if e.self_cpu_time_total > 0
        ]
        rows.sort(key=lambda r: -r["selfMs"])
        sides.append({"side": side, "ops": rows[:20], "totalMs": sum(r["selfMs"] for r in rows)})
    emit({"sides": sides, "cpuMs": usage()["cpu"]})


if mode == "sample" and spec.get("runs"):
    sample_whole()
else:
    {"prepare": prepare, "sample": sample, "profile": profile}[mode]()
