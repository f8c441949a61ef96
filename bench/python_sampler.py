"""The Python side of a benchmark: the reference's sampling math in plain PyTorch.

Run by bench/run.ts as a child process: `python3 bench/python_sampler.py '<SampleSpec JSON>'`
(the fields are documented in bench/spec.ts). It loads the TorchScript checkpoints our
native models wrote with save(), so both sides run the same network with the same weights,
and mirrors docs/diffusion-math.md step for step: the sigmoid schedule (float64,
stored as float32), pred_noise with x0 clipped to [-1, 1], ancestral steps with
condition_mean evaluated at the mean, or DDIM steps with condition_score, the noise drawn in
the same order, and the seed's classifier_cond_fn as the guidance. Prints one line
`BENCH_RESULT {json}`.
"""

import json
import os
import resource
import sys
import threading
import time

import torch
import torch.nn.functional as F

RSS_START_KIB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
DEVICE = "cpu"
AUTOCAST = None

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "fixtures"))
import models_spec_check  # noqa: E402  the reference Unet as plain eager PyTorch (docs/reference-unet.md)


class EagerUnet:
    """docs/reference-unet.md run eagerly, as the Python reference runs its nn.Module Unet,
    on the weights of one of our saved Unets (its hyperparameters are read from it)."""

    def __init__(self, scripted):
        self._params = [(k, v.detach()) for k, v in scripted.named_parameters()]
        for name in ("dim", "dim_mults", "channels", "self_condition", "random_or_learned_sinusoidal_cond"):
            setattr(self, name, getattr(scripted, name))

    def named_parameters(self):
        return self._params

    def __call__(self, x, t):
        return models_spec_check.unet(self, x, t)


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def cpu_ms():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1000.0


def sigmoid_schedule(timesteps, start=-3.0, end=3.0, tau=1.0):
    u = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
    v_start = torch.tensor(start / tau, dtype=torch.float64).sigmoid()
    v_end = torch.tensor(end / tau, dtype=torch.float64).sigmoid()
    ab = (-((u * (end - start) + start) / tau).sigmoid() + v_end) / (v_end - v_start)
    ab = ab / ab[0]
    return (1 - ab[1:] / ab[:-1]).clamp(0, 0.999)


def extract(buf, t, ndim):
    return buf.gather(-1, t).reshape(t.shape[0], *([1] * (ndim - 1)))


def classifier_cond_fn(x, t, classifier, y, classifier_scale=1.0):
    """The seed's cond_fn, as it writes it."""
    assert y is not None
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        logits = classifier(x_in, t)
        log_probs = F.log_softmax(logits, dim=-1)
        selected = log_probs[range(len(logits)), y.view(-1)]
        grad = torch.autograd.grad(selected.sum(), x_in)[0] * classifier_scale
        return grad


class Diffusion:
    """GaussianDiffusion's buffers and sampling loops (pred_noise, clip_denoised, auto-normalize)."""

    def __init__(self, model, timesteps, sampling_timesteps, ddim_eta=0.0):
        self.model = model
        self.timesteps = timesteps
        self.sampling_timesteps = sampling_timesteps
        self.ddim_eta = ddim_eta
        betas = sigmoid_schedule(timesteps)
        alphas = 1.0 - betas
        ab = torch.cumprod(alphas, dim=0)
        ab_prev = F.pad(ab[:-1], (1, 0), value=1.0)
        variance = betas * (1.0 - ab_prev) / (1.0 - ab)
        f32 = lambda v: v.to(DEVICE, torch.float32)  # noqa: E731
        self.alphas_cumprod = f32(ab)
        self.sqrt_one_minus_alphas_cumprod = f32(torch.sqrt(1.0 - ab))
        self.sqrt_recip_alphas_cumprod = f32(torch.sqrt(1.0 / ab))
        self.sqrt_recipm1_alphas_cumprod = f32(torch.sqrt(1.0 / ab - 1))
        self.posterior_variance = f32(variance)
        self.posterior_log_variance_clipped = f32(torch.log(variance.clamp(min=1e-20)))
        self.posterior_mean_coef1 = f32(betas * torch.sqrt(ab_prev) / (1.0 - ab))
        self.posterior_mean_coef2 = f32((1.0 - ab_prev) * torch.sqrt(alphas) / (1.0 - ab))
        self.timer = {"model": 0.0, "guidance": 0.0}

    def predict_start_from_noise(self, x, t, eps):
        return extract(self.sqrt_recip_alphas_cumprod, t, x.dim()) * x - extract(self.sqrt_recipm1_alphas_cumprod, t, x.dim()) * eps

    def model_predictions(self, x, t):
        t0 = time.perf_counter()
        if AUTOCAST:
            with torch.autocast(DEVICE.split(":")[0], dtype=AUTOCAST):
                eps = self.model(x, t).float()
        else:
            eps = self.model(x, t)
        self.timer["model"] += time.perf_counter() - t0
        x0 = self.predict_start_from_noise(x, t, eps).clamp(-1.0, 1.0)
        return eps, x0

    def guidance(self, cond_fn, x, t, kwargs):
        t0 = time.perf_counter()
        g = cond_fn(x, t, **kwargs)
        self.timer["guidance"] += time.perf_counter() - t0
        return g.float()

    def p_sample(self, x, t_value, cond_fn, kwargs):
        t = torch.full((x.shape[0],), t_value, dtype=torch.long, device=x.device)
        eps, x0 = self.model_predictions(x, t)
        nd = x.dim()
        mean = extract(self.posterior_mean_coef1, t, nd) * x0 + extract(self.posterior_mean_coef2, t, nd) * x
        if cond_fn is not None:
            # condition_mean, evaluated at the mean (the reference's fix of issue #51)
            mean = mean + extract(self.posterior_variance, t, nd) * self.guidance(cond_fn, mean, t, kwargs)
        noise = torch.randn_like(x) if t_value > 0 else 0.0
        return mean + (0.5 * extract(self.posterior_log_variance_clipped, t, nd)).exp() * noise

    def ddim_step(self, x, t_value, t_next, cond_fn, kwargs):
        t = torch.full((x.shape[0],), t_value, dtype=torch.long, device=x.device)
        eps, x0 = self.model_predictions(x, t)
        if cond_fn is not None:
            # condition_score (Dhariwal & Nichol, Algorithm 2)
            g = self.guidance(cond_fn, x, t, kwargs)
            eps = eps - extract(self.sqrt_one_minus_alphas_cumprod, t, x.dim()) * g
            x0 = self.predict_start_from_noise(x, t, eps)
        if t_next < 0:
            return x0
        ab = self.alphas_cumprod[t_value]
        ab_next = self.alphas_cumprod[t_next]
        sigma = self.ddim_eta * ((1 - ab / ab_next) * (1 - ab_next) / (1 - ab)).sqrt()
        c = (1 - ab_next - sigma**2).sqrt()
        noise = torch.randn_like(x)
        return x0 * ab_next.sqrt() + c * eps + sigma * noise

    @torch.no_grad()
    def sample(self, shape, cond_fn=None, guidance_kwargs=None):
        kwargs = guidance_kwargs or {}
        x = torch.randn(shape).to(DEVICE)  # drawn on the CPU, as ours, for the same images
        if self.sampling_timesteps >= self.timesteps:
            for t_value in reversed(range(self.timesteps)):
                x = self.p_sample(x, t_value, cond_fn, kwargs)
        else:
            times = torch.linspace(-1, self.timesteps - 1, steps=self.sampling_timesteps + 1)
            times = list(reversed(times.int().tolist()))
            for t_value, t_next in zip(times[:-1], times[1:]):
                x = self.ddim_step(x, t_value, t_next, cond_fn, kwargs)
        return ((x + 1) * 0.5).cpu()


def median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def sync():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def time_median(fn, reps=5):
    fn()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000.0)
    return median(times)


def matmul_peak(dtype, n=2048, reps=5):
    """GFLOP/s of a large square torch.mm in this process (its threads): the sgemm (or bf16
    gemm) peak that a step's FLOPs are measured against. Best of reps after two warm-ups."""
    a = torch.randn(n, n, device=DEVICE).to(dtype)
    b = torch.randn(n, n, device=DEVICE).to(dtype)
    for _ in range(2):
        torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def flop_bound(unet, cond_fn, kwargs, shape, spec):
    """FLOPs of one guided step (the Unet's forward, plus the classifier's forward and the
    gradient to x when guided), counted by torch.utils.flop_counter.FlopCounterMode (matmuls
    and convolutions, forward and backward), and the matmul peak of this process: the time a
    step cannot beat is flops / peak."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(shape, device=DEVICE)
    t = torch.full((shape[0],), spec["timesteps"] // 2, dtype=torch.long, device=DEVICE)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(x, t)
    unet_flops = counter.get_total_flops()
    guidance_flops = 0
    if cond_fn is not None:
        # cond_fn's ops, with backward(inputs=) for autograd.grad: FlopCounterMode's backward
        # hooks refuse autograd.grad on a leaf; the FLOPs are the same.
        with FlopCounterMode(display=False) as counter, torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_probs = F.log_softmax(kwargs["classifier"](x_in, t), dim=-1)
            log_probs[range(shape[0]), kwargs["y"].view(-1)].sum().backward(inputs=[x_in])
        guidance_flops = counter.get_total_flops()
    peak = matmul_peak(torch.float32)
    out = {"unetFlops": unet_flops, "guidanceFlops": guidance_flops, "peakGflops": peak, "peakOp": f"torch.mm 2048x2048 float32, {torch.get_num_threads()} threads"}
    if AUTOCAST is not None:
        out["unetPeakGflops"] = matmul_peak(AUTOCAST)
        out["unetPeakOp"] = f"torch.mm 2048x2048 {str(AUTOCAST).replace('torch.', '')}, {torch.get_num_threads()} threads"
    return out


def diffusion_for(unet, spec, steps):
    ancestral = spec["samplingTimesteps"] == spec["timesteps"]
    return Diffusion(unet, steps if ancestral else spec["timesteps"], steps)


def main():
    global DEVICE, AUTOCAST
    spec = json.loads(sys.argv[1])
    DEVICE = spec.get("device", "cpu")
    AUTOCAST = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(spec.get("autocast"))
    torch.set_num_threads(spec["threads"])
    torch.backends.nnpack.set_flags(False)  # as our addon: NNPACK is off there
    unet = torch.jit.load(spec["files"]["unetPt"], map_location=DEVICE).eval()
    if spec.get("pythonUnet", "eager") == "eager":
        unet = EagerUnet(unet)
    cond_fn, kwargs = None, None
    if spec["guidance"] in ("native", "js"):
        classifier = torch.jit.load(spec["files"]["classifierPt"], map_location=DEVICE).eval()
        y = torch.tensor(spec["y"], dtype=torch.long, device=DEVICE)
        cond_fn = classifier_cond_fn
        kwargs = {"classifier": classifier, "y": y, "classifier_scale": spec["classifierScale"]}
    shape = (spec["batch"], spec["channels"], spec["imageSize"], spec["imageSize"])
    if spec.get("flopsOnly"):
        # For rows that time our side alone: the bound of the same step, nothing sampled.
        flops = flop_bound(unet, cond_fn, kwargs, shape, spec)
        print("BENCH_RESULT " + json.dumps({"side": "python", "flops": flops, "cpuMs": cpu_ms()}), flush=True)
        return

    timing = {}

    def run_samples():
        warm = diffusion_for(unet, spec, spec["warmupSteps"])
        torch.manual_seed(spec["seed"])
        t0 = time.perf_counter()
        warm.sample(shape, cond_fn, kwargs)
        timing["warmup_ms"] = (time.perf_counter() - t0) * 1000.0

        diffusion = diffusion_for(unet, spec, spec["samplingTimesteps"])
        times = []
        cpu0, faults0 = cpu_ms(), minor_faults()
        for run in range(spec["runs"]):
            torch.manual_seed(spec["seed"])
            t0 = time.perf_counter()
            out = diffusion.sample(shape, cond_fn, kwargs)
            times.append((time.perf_counter() - t0) * 1000.0)
            if run == 0 and spec.get("outPath"):
                with open(spec["outPath"], "wb") as fh:
                    fh.write(out.contiguous().numpy().tobytes())
        timing.update(times=times, run_cpu_ms=cpu_ms() - cpu0, run_faults=minor_faults() - faults0, diffusion=diffusion)

    if spec.get("pythonThread"):
        # As our sampler does: the loop on a thread of its own (glibc gives it its own arena).
        def guarded():
            try:
                run_samples()
            except BaseException as err:  # re-raised on the main thread below
                timing["error"] = err

        worker = threading.Thread(target=guarded)
        worker.start()
        worker.join()
        if "error" in timing:
            raise timing["error"]
    else:
        run_samples()
    times, warmup_ms, diffusion = timing["times"], timing["warmup_ms"], timing["diffusion"]
    run_cpu_ms = timing["run_cpu_ms"]
    steps = spec["samplingTimesteps"]
    total_ms = sum(times)
    model_ms = diffusion.timer["model"] * 1000.0
    guidance_ms = diffusion.timer["guidance"] * 1000.0
    per = spec["runs"] * steps
    split = {"modelMs": model_ms / per, "guidanceMs": guidance_ms / per, "otherMs": (total_ms - model_ms - guidance_ms) / per}

    breakdown = None
    if spec.get("breakdown"):
        x = torch.randn(shape, device=DEVICE)
        t = torch.full((spec["batch"],), spec["timesteps"] // 2, dtype=torch.long, device=DEVICE)
        with torch.no_grad():
            model_t = time_median(lambda: unet(x, t))
        cond_t = time_median(lambda: cond_fn(x, t, **kwargs)) if cond_fn else None
        breakdown = {"modelMs": model_t, "condFnMs": cond_t}

    # After the timed samples, so that counting does not warm anything they use.
    flops = flop_bound(unet, cond_fn, kwargs, shape, spec) if spec.get("flops", True) else None

    result = {
        "side": "python",
        "flops": flops,
        "steps": steps,
        "timesMs": times,
        "warmupMs": warmup_ms,
        "runCpuMs": run_cpu_ms,
        "runMinorFaults": timing["run_faults"],
        "cpuMs": cpu_ms(),
        "rssStartKiB": RSS_START_KIB,
        "rssPeakKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "breakdown": breakdown,
        "split": split,
        "threads": torch.get_num_threads(),
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
