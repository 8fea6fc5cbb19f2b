"""Where an epoch of training and a call of ``effect(X)`` spend their time: a profile.

A diagnostic beside ``throughput.py``, whose rows say how fast; this says why. For each
model and batch size, one epoch after a warm-up epoch runs under ``torch.profiler``
(the plain torch loop of ``throughput.py`` and causalnn's TARNet, float32 and
bfloat16, on the same table), and the report gives:

- the epoch's wall time, the host time spent in torch operators, the time the device's
  kernels ran (their sum) and the number of kernel launches: device time near the wall
  time means the arithmetic is the limit; far below it, launches and host work are;
- the operators or kernels that took the most device time (the CPU's own operators on
  a CPU run).

Then ``effect(X)`` on the whole table: its wall time and the Python functions that took
the most of it (cProfile), validation, scaling and copies included.

The profiler adds its own overhead to each launch: compare the rows of one run with
each other, not with ``throughput.py``'s rows/s.

Run (GPU):  python benchmarks/profile_steps.py --device cuda --rows 1000000 --batch 8192 262144
Run (CPU):  python benchmarks/profile_steps.py --device cpu --rows 20000 --batch 2048
Writes benchmarks/results/profile_<device>.md (``--out DIR`` for another folder); an
existing file is refused before any run unless ``--force``.
"""
import argparse
import cProfile
import io
import pstats
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from causalnn import TARNet
from causalnn.benchmark import machine_description, refuse_existing, save_markdown
from causalnn.engine import resolve_device, wait_for_gpu
from causalnn.engine.callbacks import Callback
from throughput import HEAD, REP, PlainTorchRunner, make_table  # benchmarks/, beside this


class _ProfileEpoch(Callback):
    """Runs epoch ``epoch`` of a fit under ``torch.profiler``."""

    def __init__(self, activities, epoch=2):
        self.activities, self.epoch = activities, epoch
        self.profiler, self.wall = None, None

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            wait_for_gpu()
            self.profiler = profile(activities=self.activities)
            self.profiler.__enter__()
            self._start = time.perf_counter()

    def on_epoch_end(self, trainer, record):
        if self.profiler is not None and self.wall is None:
            wait_for_gpu()
            self.wall = time.perf_counter() - self._start
            self.profiler.__exit__(None, None, None)


def profiled_tarnet_epoch(X, y, t, batch, device, activities, **params):
    """Wall seconds and profiler of the second epoch of a TARNet fit."""
    hook = _ProfileEpoch(activities)

    class ProfiledTARNet(TARNet):
        def _training_callbacks(self):
            return (*super()._training_callbacks(), hook)

    ProfiledTARNet(representation_layers=REP, head_layers=HEAD, validation_fraction=0.0,
                   patience=None, random_state=0, max_epochs=2, batch_size=batch,
                   device=device, **params).fit(X, y, treatment=t)
    return hook.wall, hook.profiler


def profiled_plain_epoch(X, y, t, batch, device, activities):
    """Wall seconds and profiler of the second epoch of the plain loop."""
    _, train_one_epoch = PlainTorchRunner().training(X, y, t, batch, device)

    def epoch():
        train_one_epoch()
        wait_for_gpu()

    epoch()
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        epoch()
        wall = time.perf_counter() - start
    return wall, prof


def _device_ms(event):
    """Device milliseconds of a profiler entry: an operator's own kernels, or a kernel."""
    return getattr(event, "self_device_time_total", 0.0) / 1e3


def summarize(label, wall, prof, on_gpu, top):
    """Markdown lines: the epoch's totals and its ``top`` operators by time."""
    events = prof.key_averages()
    host_ms = sum(e.self_cpu_time_total for e in events) / 1e3
    lines = [f"### {label}", ""]
    if on_gpu:
        cuda = torch.autograd.DeviceType.CUDA
        kernels = [e for e in prof.events() if e.device_type == cuda]
        device_ms = sum(e.time_range.elapsed_us() for e in kernels) / 1e3
        lines += [f"Epoch wall {wall * 1e3:.1f} ms; host time in operators "
                  f"{host_ms:.1f} ms; device kernels {device_ms:.1f} ms "
                  f"({device_ms / (wall * 1e3):.0%} of the wall time) in "
                  f"{len(kernels)} launches.", ""]
        for kind, chosen in (("operator", [e for e in events if e.device_type != cuda]),
                             ("kernel", [e for e in events if e.device_type == cuda])):
            ranked = sorted(chosen, key=_device_ms, reverse=True)[:top]
            lines += [f"| {kind} | calls | self device ms | share of device time |",
                      "|---|---|---|---|"]
            lines += [f"| `{e.key[:90]}` | {e.count} | {_device_ms(e):.1f} "
                      f"| {_device_ms(e) / max(device_ms, 1e-9):.0%} |" for e in ranked]
            lines.append("")
    else:
        lines += [f"Epoch wall {wall * 1e3:.1f} ms; CPU time in operators "
                  f"{host_ms:.1f} ms.", ""]
        ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
        lines += ["| operator | calls | self CPU ms |", "|---|---|---|"]
        lines += [f"| `{e.key[:70]}` | {e.count} | {e.self_cpu_time_total / 1e3:.1f} |"
                  for e in ranked]
    return lines + [""]


def effect_profile(X, y, t, device, top):
    """Markdown lines: wall time of ``effect(X)`` and the functions that took it."""
    est = TARNet(representation_layers=REP, head_layers=HEAD, validation_fraction=0.0,
                 patience=None, random_state=0, max_epochs=1, batch_size=65536,
                 device=device).fit(X[:50000], y[:50000], treatment=t[:50000])
    est.effect(X[:1000])
    walls = []
    for _ in range(2):
        wait_for_gpu()
        start = time.perf_counter()
        est.effect(X)
        wait_for_gpu()
        walls.append(time.perf_counter() - start)
    profiler = cProfile.Profile()
    profiler.runcall(est.effect, X)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    body = text.getvalue()
    body = body[body.find("ncalls"):].rstrip()
    return ([f"### effect(X) on {len(X):,} rows", "",
             f"Wall {min(walls) * 1e3:.0f} ms (best of 2; {len(X) / min(walls) / 1e6:.2f} M "
             f"rows/s). cProfile of one more call, by time in the function itself:", "",
             "```", body, "```", ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[8192, 262144])
    parser.add_argument("--top", type=int, default=12, help="operators listed per run")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    device = resolve_device(args.device)
    out = Path(args.out) / f"profile_{device.type}.md"
    refuse_existing([out], args.force)
    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    X, y, t = make_table(args.rows)
    lines = [f"# Profile of training epochs and effect(X) ({device.type})", "",
             f"Machine: {machine_description(device)}.", "",
             "Command: `python benchmarks/profile_steps.py "
             + " ".join(argv if argv is not None else sys.argv[1:]) + "`", "",
             f"{args.rows:,} rows x {X.shape[1]} features; the network of throughput.py. "
             "The second epoch of each fit, under torch.profiler (which slows each launch: "
             "compare rows with each other).", ""]
    start = time.perf_counter()
    for batch in args.batch:
        runs = [("plain torch loop", lambda: profiled_plain_epoch(
                     X, y, t, batch, device, activities)),
                ("causalnn TARNet", lambda: profiled_tarnet_epoch(
                     X, y, t, batch, device, activities)),
                ("causalnn TARNet, precision=bfloat16", lambda: profiled_tarnet_epoch(
                     X, y, t, batch, device, activities, precision="bfloat16")),
                # captured in the first epoch; the profiled second one replays
                ("causalnn TARNet, compile='cuda-graph'", lambda: profiled_tarnet_epoch(
                     X, y, t, batch, device, activities, compile="cuda-graph"))]
        for label, run in runs:
            wall, prof = run()
            section = summarize(f"{label}, batch {batch:,}", wall, prof, on_gpu, args.top)
            print("\n".join(section), flush=True)
            lines += section
    section = effect_profile(X, y, t, device, args.top)
    print("\n".join(section), flush=True)
    lines += section
    lines += [f"Total wall time {time.perf_counter() - start:.0f} s."]
    save_markdown(lines, out)


if __name__ == "__main__":
    main()
