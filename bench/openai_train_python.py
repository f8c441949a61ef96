"""The Python side of bench/openai_train.ts: openai/guided-diffusion's own TrainLoop, from a checkout.

    python3 bench/openai_train_python.py prepare '<json>'  their UNetModel with seeded weights and
                                                          the batches, th.save'd
    python3 bench/openai_train_python.py train '<json>'    their TrainLoop.run_step on those batches

The JSON: bench/openai_train_spec.ts (OpenAITrainSpec). Prints one line `BENCH_RESULT {json}`.

Their dist_util imports mpi4py and blobfile: neither is installed nor needed in one process on
the CPU; both are stubbed as modules (as scripts/fixtures/openai_train_resume.py does), and a
one-process gloo group stands in for their MPI-launched one (TrainLoop asks its world size and
broadcasts the parameters once).
"""

import json
import os
import resource
import sys
import tempfile
import time
import types

import torch as th

mode, spec = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, spec["repo"])
sys.modules.setdefault("mpi4py", types.ModuleType("mpi4py"))
sys.modules["mpi4py"].MPI = types.SimpleNamespace()
bf = types.ModuleType("blobfile")
bf.join, bf.dirname, bf.exists, bf.BlobFile = os.path.join, os.path.dirname, os.path.exists, open
sys.modules["blobfile"] = bf

from guided_diffusion import logger  # noqa: E402
from guided_diffusion.script_util import create_model_and_diffusion, model_and_diffusion_defaults  # noqa: E402

th.set_num_threads(spec["threads"])


def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu": (r.ru_utime + r.ru_stime) * 1000.0, "faults": r.ru_minflt, "wall": time.perf_counter() * 1000.0}


def emit(value):
    print("BENCH_RESULT " + json.dumps(value), flush=True)


def build():
    flags = model_and_diffusion_defaults()
    flags.update(spec["modelFlags"])
    return create_model_and_diffusion(**flags)


def prepare():
    th.manual_seed(spec["seed"])
    model, _ = build()
    # Every weight drawn: their zero_module'd output convs would make blocks the identity.
    with th.no_grad():
        for p in model.parameters():
            p.copy_(th.randn_like(p) * 0.02)
    th.save(model.state_dict(), spec["files"]["model"])
    size, batch = spec["modelFlags"]["image_size"], spec["trainFlags"]["batch_size"]
    data = {}
    for i in range(spec["steps"] + spec["warmupSteps"]):
        data[f"batch{i}"] = th.rand(batch, 3, size, size) * 2 - 1
        data[f"y{i}"] = th.randint(0, 1000, (batch,))
    th.save(data, spec["files"]["data"])
    emit({"cpuMs": usage()["cpu"], "torch": th.__version__})


def train():
    import torch.distributed as dist
    from guided_diffusion.train_util import TrainLoop

    tmp = tempfile.mkdtemp()
    dist.init_process_group("gloo", init_method=f"file://{tmp}/pg", rank=0, world_size=1)
    logger.configure(dir=tmp, format_strs=[])
    model, diffusion = build()
    model.load_state_dict(th.load(spec["files"]["model"], map_location="cpu"))
    data = th.load(spec["files"]["data"])
    f = spec["trainFlags"]
    loop = TrainLoop(model=model, diffusion=diffusion, data=None, log_interval=10, save_interval=10**9,
                     resume_checkpoint="", lr=f["lr"], weight_decay=f["weight_decay"], batch_size=f["batch_size"],
                     microbatch=f["microbatch"], ema_rate=f["ema_rate"])
    th.manual_seed(spec["seed"])
    marks, losses = [], []
    for i in range(spec["steps"] + spec["warmupSteps"]):
        start = usage()
        # Their run_loop's body without the data iterator: run_step, and the logger's dump.
        loop.run_step(data[f"batch{i}"], {"y": data[f"y{i}"]})
        losses.append(float(logger.getkvs()["loss"]))
        logger.dumpkvs()
        loop.step += 1
        marks.append((start, usage()))
    timed = marks[spec["warmupSteps"]:]
    n = len(timed)
    emit({
        "side": "python",
        "msPerStep": [b["wall"] - a["wall"] for a, b in timed],
        "cpuMsPerStep": sum(b["cpu"] - a["cpu"] for a, b in timed) / n,
        "faultsPerStep": sum(b["faults"] - a["faults"] for a, b in timed) / n,
        "losses": losses[spec["warmupSteps"]:],
        "rssPeakKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "threads": th.get_num_threads(),
        "cpuMs": usage()["cpu"],
    })
    dist.destroy_process_group()


{"prepare": prepare, "train": train}[mode]()
