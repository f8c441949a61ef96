"""The Python side of the training benchmark: the reference's training step in plain PyTorch.

Run by bench/training.ts as a child process: `python3 bench/python_trainer.py '<TrainSpec JSON>'`
(the fields are documented in bench/training_spec.ts). One step is what the seed's Trainer does
per batch, with the hyper-parameters of our trainDiffusion (lib/recipe.ts):
  x0 = data[randint(N, (B,))], t = randint(T, (B,)), noise = randn (in that order, from one
  seeded CPU generator, as our trainer draws them); p_losses (q_sample, the model's output
  against the objective's target, per-sample mean, times the loss weight, batch mean);
  backward; clip_grad_norm_ to gradClip; Adam (or AdamW with weightDecay > 0); EMA lerp.
The Unet is either docs/reference-unet.md as eager PyTorch ops (as the reference's nn.Module
runs) on the weights of our saved TorchScript Unet, or that TorchScript file itself
(torch.jit.load). Prints one line `BENCH_RESULT {json}`.
"""

import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

RSS_START_KIB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "fixtures"))
import models_spec_check  # noqa: E402  the reference Unet as plain eager PyTorch (docs/reference-unet.md)


def cpu_ms():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1000.0


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def betas_for(name, timesteps):
    """docs/diffusion-math.md, in float64."""
    u = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
    if name == "cosine":
        s = 0.008
        ab = torch.cos((u + s) / (1 + s) * math.pi * 0.5) ** 2
    elif name == "linear":
        scale = 1000 / timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    else:
        raise ValueError(f"betaSchedule {name} is not mirrored here")
    ab = ab / ab[0]
    return (1 - ab[1:] / ab[:-1]).clamp(0, 0.999)


class EagerUnet:
    """docs/reference-unet.md run eagerly (scripts/fixtures/models_spec_check.py), on trainable
    leaf copies of a saved Unet's parameters: the reference trains its nn.Module this way."""

    def __init__(self, scripted):
        self._params = [(k, v.detach().clone().requires_grad_(True)) for k, v in scripted.named_parameters()]
        for name in ("dim", "dim_mults", "channels", "self_condition", "random_or_learned_sinusoidal_cond"):
            setattr(self, name, getattr(scripted, name))

    def named_parameters(self):
        return self._params

    def parameters(self):
        return [p for _, p in self._params]

    def __call__(self, x, t):
        return models_spec_check.unet(self, x, t, keep_grad=True)


class Step:
    """One training step of the reference, with our trainer's hyper-parameters."""

    def __init__(self, spec, model, params, data):
        self.model = model
        self.params = params
        self.data = data
        self.batch = spec["batch"]
        betas = betas_for(spec["betaSchedule"], spec["timesteps"])
        ab = torch.cumprod(1 - betas, 0)
        self.timesteps = spec["timesteps"]
        self.sqrt_ab = ab.sqrt().float()
        self.sqrt_1m_ab = (1 - ab).sqrt().float()
        snr = (ab / (1 - ab)).float().double()
        objective = spec["objective"]
        # The loss weight without min-SNR clamping: 1 for pred_noise, snr for pred_x0, snr/(snr+1) for pred_v.
        self.loss_weight = {"pred_noise": snr / snr, "pred_x0": snr, "pred_v": snr / (snr + 1)}[objective].float()
        self.objective = objective
        self.grad_clip = spec["gradClip"]
        self.ema_decay = spec["emaDecay"]
        self.gen = torch.Generator().manual_seed(spec["seed"])
        # bfloat16 autocast of the forward (model and loss), as trainDiffusion's autocast option.
        self.autocast = spec.get("autocast") == "bfloat16"
        # Python's best optimizer path on the CPU, as measured (bench/training.ts says which).
        kind = spec.get("adam", "fused")
        common = dict(lr=spec["lr"], betas=tuple(spec["betas"]), eps=spec["eps"])
        flags = {"fused": dict(fused=True), "foreach": dict(foreach=True), "for-loop": dict(foreach=False)}[kind]
        if spec["weightDecay"] > 0:
            self.opt = torch.optim.AdamW(params, weight_decay=spec["weightDecay"], **common, **flags)
        else:
            self.opt = torch.optim.Adam(params, **common, **flags)
        with torch.no_grad():
            self.ema = [p.detach().clone() for p in params]

    def extract(self, buf, t, ndim):
        return buf.gather(-1, t).reshape(t.shape[0], *([1] * (ndim - 1)))

    def p_losses(self, x0, t, noise):
        x = self.extract(self.sqrt_ab, t, x0.dim()) * x0 + self.extract(self.sqrt_1m_ab, t, x0.dim()) * noise
        out = self.model(x, t)
        if self.objective == "pred_noise":
            target = noise
        elif self.objective == "pred_x0":
            target = x0
        else:
            target = self.extract(self.sqrt_ab, t, x0.dim()) * noise - self.extract(self.sqrt_1m_ab, t, x0.dim()) * x0
        loss = F.mse_loss(out, target, reduction="none")
        loss = loss.reshape(loss.shape[0], -1).mean(1)
        loss = loss * self.extract(self.loss_weight, t, 1)
        return loss.mean()

    def __call__(self):
        n = self.data.shape[0]
        idx = torch.randint(n, (self.batch,), generator=self.gen)
        t = torch.randint(self.timesteps, (self.batch,), generator=self.gen)
        x0 = self.data.index_select(0, idx)
        noise = torch.randn(x0.shape, generator=self.gen)
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.p_losses(x0, t, noise)
        value = loss.item()
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, self.params, 1.0 - self.ema_decay)
        return value


def count_flops(step):
    """FLOPs of one step as torch's flop counter sees them (matmuls and convolutions, forward
    and backward; elementwise ops and the optimizer count 0)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def gemm_gflops(dtype=torch.float32):
    """A measured peak for this process's threads: the best of 5 2048x2048 matmuls."""
    a = torch.randn(2048, 2048).to(dtype)
    b = torch.randn(2048, 2048).to(dtype)
    c = torch.empty(2048, 2048, dtype=dtype)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048 ** 3 / best / 1e9


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    scripted = torch.jit.load(spec["files"]["unetPt"])
    if spec.get("pythonUnet", "eager") == "script":
        model = scripted
        model.train()
        params = [p for p in model.parameters()]
        for p in params:
            p.requires_grad_(True)
    else:
        model = EagerUnet(scripted)
        params = model.parameters()
    torch.manual_seed(spec["dataSeed"])
    c, s = spec["channels"], spec["imageSize"]
    data = torch.rand(spec["dataCount"], c, s, s) * 2 - 1
    step = Step(spec, model, params, data)

    losses = []
    t0 = time.perf_counter()
    for _ in range(spec["warmupSteps"]):
        losses.append(step())
    warmup_ms = (time.perf_counter() - t0) * 1000

    times = []
    cpu0 = cpu_ms()
    faults0 = minor_faults()
    for _ in range(spec["steps"]):
        t0 = time.perf_counter()
        losses.append(step())
        times.append((time.perf_counter() - t0) * 1000)
    run_cpu_ms = cpu_ms() - cpu0
    run_faults = minor_faults() - faults0

    result = {
        "side": "python",
        "timesMs": times,
        "warmupMs": warmup_ms,
        "losses": losses,
        "runCpuMs": run_cpu_ms,
        "runMinorFaults": run_faults,
        "rssStartKiB": RSS_START_KIB,
        "threads": torch.get_num_threads(),
    }
    # After the timed steps, so that neither disturbs them.
    if spec.get("flops"):
        result["flopsPerStep"] = count_flops(step)
        result["sgemmGflops"] = gemm_gflops()
        if step.autocast:
            result["bf16GemmGflops"] = gemm_gflops(torch.bfloat16)
    if spec.get("profile"):
        with torch.autograd.profiler.profile() as prof:
            for _ in range(3):
                step()
        result["profile"] = [
            {"name": e.key, "selfMs": e.self_cpu_time_total / 1000 / 3, "calls": e.count / 3}
            for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:25]
        ]
    result["cpuMs"] = cpu_ms()
    result["rssPeakKiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
