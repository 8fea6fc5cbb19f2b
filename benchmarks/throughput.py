"""Training and prediction throughput (rows per second) on large synthetic tables.

Per table size and batch size, in the same run: causalnn's TARNet (float32 and, with
--bf16, bfloat16 mixed precision), CFR-Wasserstein (IPM on a 1024-row balanced
sub-batch), a plain hand-written torch loop of the same network (data on the device,
shuffled batches, Adam), and CATENets 0.2.4's TARNet when it is importable.

Training rows/s excludes fixed costs (building the model, moving the table to the
device, the first epoch's warm-up and, with compile=True, compilation): each model is
fitted for 1 + --epochs epochs and timed over the epochs after the first (causalnn: the
``dur`` of its ``history_``; the plain loop: its own per-epoch timer; CATENets, which
has no per-epoch hook: the difference between a 1-epoch and a (1 + --epochs)-epoch fit).
causalnn runs with validation_fraction=0 and patience=None (no validation pass, like the
plain loop); CATENets with early_stopping=False and batch_norm=False. Training rows/s
counts the rows each model's training steps see per epoch: every row for causalnn and
the plain loop; for CATENets 0.2.4, whose epoch is ``round(n / batch)`` batches with
its last slice ending at row n - 1, ``min(round(n / batch) * batch, n - 1)`` (16,384 of
20,000 rows at batch 8,192). Prediction rows/s is ``effect(X)`` over the whole table,
NumPy in and out.

Network (all models): 25 features -> 3 x 200 ELU (representation) -> 2 heads of 3 x 100
ELU -> 1 (the TARNet defaults). causalnn's TARNet also projects the representation onto
the unit sphere, reweights the factual loss by the arms' shares and decays its weights;
two further rows take the gap to the plain loop apart: ``tarnet-plain-model`` (causalnn
without those three, the plain loop's model) and ``plain-members`` (the plain loop built
from causalnn's one-member ``MemberLinear`` layers); ``tarnet-addmm`` is TARNet with its
one-member layers computed by plain ``mm``/``addmm`` rather than batched products of
batch 1 (patched for that row only; bit-identical on the CPU). ``tarnet-compile`` fits
with ``compile=True`` (torch.compile, CUDA graphs of the forward and backward passes);
``tarnet-graph`` with ``compile="cuda-graph"`` (each whole training step, optimizer
included, one CUDA graph; on a CPU it trains as ``tarnet``).

Run (CPU):  python benchmarks/throughput.py --device cpu --rows 20000 --batch 8192
Run (GPU):  python benchmarks/throughput.py --device cuda --rows 100000 1000000 10000000
            --batch 8192 65536 262144 --bf16
Writes benchmarks/results/throughput_<device><tag>.md (``--out DIR`` for another folder,
``--tag`` a suffix); an existing file is refused before any fit unless ``--force``.
"""
import argparse
import contextlib
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch

from causalnn import CFRNet, TARNet
from causalnn.engine import resolve_device
from causalnn.nets import MemberLinear
from causalnn.benchmark import machine_description, refuse_existing, save_markdown

REP, HEAD = (200, 200, 200), (100, 100, 100)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_table(n, d=25, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d).astype(np.float32)
    t = (rng.rand(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] + t * (1 + X[:, 2]) + 0.1 * rng.randn(n)).astype(
        np.float32)
    return X, y, t


# ---- the models -----------------------------------------------------------------------
def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


class CausalnnRunner:
    def __init__(self, make):
        self.make = make

    def rows_per_epoch(self, n, batch):
        """Rows the training steps see in one epoch: all of them."""
        return n

    def epoch_seconds(self, X, y, t, epochs, batch, device):
        """Seconds of each epoch after the first, from the fit's own ``history_``."""
        est = self.make(max_epochs=1 + epochs, batch_size=batch, device=device)
        est.fit(X, y, treatment=t)
        return [record["dur"] for record in est.history_[1:]], est

    def predict(self, est, X, device):
        return timed(lambda: est.effect(X), device)[0]


def _one_member_as_addmm(layer, x):
    """``MemberLinear.forward`` of a one-member layer by plain ``mm``/``addmm`` (the
    same arithmetic as its batched product of batch 1; bit-identical on the CPU)."""
    if layer.n_members != 1:
        return _MEMBER_FORWARD(layer, x)
    weight = layer.weight.view(layer.in_features, layer.out_features)
    if x.dim() == 2:
        return (x @ weight + layer.bias).unsqueeze(0)
    return torch.addmm(layer.bias, x.view(x.shape[1], -1), weight).unsqueeze(0)


_MEMBER_FORWARD = MemberLinear.forward


@contextlib.contextmanager
def _one_member_layers_as_addmm():
    MemberLinear.forward = _one_member_as_addmm
    try:
        yield
    finally:
        MemberLinear.forward = _MEMBER_FORWARD


class AddmmRunner(CausalnnRunner):
    """causalnn's TARNet with its one-member layers computed by ``mm``/``addmm``
    instead of batched products of batch 1 (a diagnostic row: if it closes the gap to
    the plain loop on a GPU, the batched products of batch 1 are its cause)."""

    def epoch_seconds(self, X, y, t, epochs, batch, device):
        with _one_member_layers_as_addmm():
            return super().epoch_seconds(X, y, t, epochs, batch, device)

    def predict(self, est, X, device):
        with _one_member_layers_as_addmm():
            return super().predict(est, X, device)


class PlainTorchRunner:
    """The loop a user would write: data on the device, randperm batches, Adam.

    ``member_layers=True`` builds the same loop from causalnn's one-member
    :class:`~causalnn.nets.MemberLinear` layers (batched products of batch 1 after the
    first layer), which isolates what those layers cost against ``nn.Linear``."""

    def __init__(self, member_layers=False):
        self.member_layers = member_layers

    def rows_per_epoch(self, n, batch):
        """Rows the training steps see in one epoch: all of them (``randperm.split``)."""
        return n

    class Net(torch.nn.Module):
        def __init__(self, d, member_layers=False):
            super().__init__()

            def linear(a, b):
                return MemberLinear(1, a, b) if member_layers else torch.nn.Linear(a, b)

            def mlp(sizes, last=None):
                layers = []
                for a, b in zip(sizes[:-1], sizes[1:]):
                    layers += [linear(a, b), torch.nn.ELU()]
                if last:
                    layers.append(linear(sizes[-1], last))
                return torch.nn.Sequential(*layers)

            self.rep = mlp((d,) + REP)
            self.heads = torch.nn.ModuleList(mlp((REP[-1],) + HEAD, 1) for _ in range(2))

        def forward(self, x):
            phi = self.rep(x)
            out = torch.cat([h(phi) for h in self.heads], dim=-1)
            return out[0] if out.dim() == 3 else out  # member layers: (1, n, 2)

    def training(self, X, y, t, batch, device):
        """The network and a function that trains it for one epoch."""
        net = self.Net(X.shape[1], self.member_layers).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        Xd, yd, td = (torch.as_tensor(a, device=device) for a in (X, y, t))

        def epoch():
            for idx in torch.randperm(len(Xd), device=device).split(batch):
                out = net(Xd[idx])
                eta = torch.where(td[idx] == 1, out[:, 1], out[:, 0])
                loss = (eta - yd[idx]).pow(2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return net, epoch

    def epoch_seconds(self, X, y, t, epochs, batch, device):
        net, epoch = self.training(X, y, t, batch, device)
        seconds = []
        for _ in range(1 + epochs):
            sync(device)
            start = time.perf_counter()
            epoch()
            sync(device)
            seconds.append(time.perf_counter() - start)
        return seconds[1:], net

    def predict(self, net, X, device):
        def run():
            with torch.no_grad():
                outs = [net(torch.as_tensor(c, device=device)).cpu()
                        for c in np.array_split(X, max(1, len(X) // 65536))]
            out = torch.cat(outs).numpy()
            return out[:, 1] - out[:, 0]
        return timed(run, device)[0]


def import_catenets():
    """CATENets 0.2.4 (install with --no-deps plus loguru). Its package __init__ imports
    dataset downloaders (gdown, requests) that the models never use; stand-ins for the
    missing ones let the models import without network libraries."""
    for name in ("gdown", "requests"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    try:
        from catenets.models.torch import TARNet as CateTARNet
        import catenets.models.torch.base as base
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return None, f"{type(exc).__name__}: {exc}"
    return (CateTARNet, base), None


class CatenetsRunner:
    def __init__(self, module):
        self.cls, self.base = module

    @staticmethod
    def rows_per_epoch(n, batch):
        """Rows CATENets 0.2.4 trains on per epoch (``representation_nets.py``):
        ``round(n / batch)`` batches (1 when ``batch >= n``), each the slice
        ``[b * batch, min((b + 1) * batch, n - 1))`` of the shuffled rows, so the
        epoch sees ``min(round(n / batch) * batch, n - 1)`` rows, not n."""
        batch = min(batch, n)
        n_batches = int(np.round(n / batch)) if batch < n else 1
        return min(n_batches * batch, n - 1)

    def fit(self, X, y, t, epochs, batch, device):
        # CATENets picks its device at import (a module constant), not per model
        self.base.DEVICE = device
        est = self.cls(n_unit_in=X.shape[1], n_layers_r=3, n_units_r=200, n_layers_out=3,
                       n_units_out=100, batch_size=batch, n_iter=epochs, lr=1e-3,
                       val_split_prop=0.0, early_stopping=False, batch_norm=False,
                       n_iter_print=10**9).to(device)
        return timed(lambda: est.fit(X, y, t), device)

    def epoch_seconds(self, X, y, t, epochs, batch, device):
        """CATENets has no per-epoch hook: the difference of a 1-epoch and a
        (1 + epochs)-epoch fit, split evenly over the epochs."""
        t1, _ = self.fit(X, y, t, 1, batch, device)
        tk, est = self.fit(X, y, t, 1 + epochs, batch, device)
        return [max(tk - t1, 1e-9) / epochs] * epochs, est

    def predict(self, est, X, device):
        return timed(lambda: est.predict(X).detach().cpu().numpy(), device)[0]


def measure(runner, X, y, t, epochs, batch, device):
    """Training rows/s over the epochs after the first (the first pays allocation,
    kernel selection and, with compile=True, compilation), counting the rows the
    runner's training steps really see per epoch, and prediction rows/s."""
    seconds, model = runner.epoch_seconds(X, y, t, epochs, batch, device)
    rows_per_s = len(seconds) * runner.rows_per_epoch(len(X), batch) / sum(seconds)
    predict_s = runner.predict(model, X, device)
    return rows_per_s, len(X) / predict_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rows", type=int, nargs="+", default=[20000])
    parser.add_argument("--batch", type=int, nargs="+", default=[8192])
    parser.add_argument("--epochs", type=int, default=2,
                        help="timed epochs beyond the first")
    parser.add_argument("--models", nargs="+",
                        default=["plain", "tarnet", "tarnet-bf16", "cfr-wass", "catenets"])
    parser.add_argument("--bf16", action="store_true", help="include tarnet-bf16")
    parser.add_argument("--catenets-max-rows", type=int, default=1_000_000)
    parser.add_argument("--cfr-max-rows", type=int, default=1_000_000)
    parser.add_argument("--tf32", action="store_true",
                        help="allow TF32 matmuls (a global torch setting; the user's call)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--tag", default="", help="suffix of the result file's name")
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out = Path(args.out) / f"throughput_{device.type}{args.tag}.md"
    refuse_existing([out], args.force)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    common = dict(representation_layers=REP, head_layers=HEAD, validation_fraction=0.0,
                  patience=None, random_state=0)
    runners = {
        "plain": ("plain torch loop (baseline)", PlainTorchRunner()),
        "plain-members": ("plain torch loop of one-member MemberLinear layers",
                          PlainTorchRunner(member_layers=True)),
        "tarnet": ("causalnn TARNet", CausalnnRunner(lambda **kw: TARNet(**common, **kw))),
        "tarnet-plain-model": (
            "causalnn TARNet, the plain loop's model (no unit-sphere representation, "
            "reweighting or weight decay)", CausalnnRunner(lambda **kw: TARNet(
                **common, normalize_representation=False, reweight_sample=False,
                weight_decay=0.0, **kw))),
        "tarnet-addmm": ("causalnn TARNet, one-member layers by mm/addmm (diagnostic)",
                         AddmmRunner(lambda **kw: TARNet(**common, **kw))),
        "tarnet-bf16": ("causalnn TARNet, precision=bfloat16", CausalnnRunner(
            lambda **kw: TARNet(**common, precision="bfloat16", **kw))),
        "tarnet-compile": ("causalnn TARNet, compile=True (CUDA graphs)", CausalnnRunner(
            lambda **kw: TARNet(**common, compile=True, **kw))),
        "tarnet-graph": ("causalnn TARNet, compile='cuda-graph' (whole steps as CUDA "
                         "graphs)", CausalnnRunner(
                             lambda **kw: TARNet(**common, compile="cuda-graph", **kw))),
        "tarnet-graph-bf16": ("causalnn TARNet, compile='cuda-graph', precision=bfloat16",
                              CausalnnRunner(lambda **kw: TARNet(
                                  **common, compile="cuda-graph", precision="bfloat16",
                                  **kw))),
        "cfr-wass": ("causalnn CFR-Wasserstein (alpha 0.1)", CausalnnRunner(
            lambda **kw: CFRNet(**common, ipm="wasserstein", alpha=0.1, **kw))),
    }
    notes = []
    if "catenets" in args.models:
        module, error = import_catenets()
        if module is None:
            notes.append(f"CATENets TARNet: not available here ({error}); row skipped.")
        else:
            runners["catenets"] = ("CATENets 0.2.4 TARNet", CatenetsRunner(module))
    if not args.bf16:
        runners.pop("tarnet-bf16")
        runners.pop("tarnet-graph-bf16")

    lines = [f"# Throughput ({device.type})", "",
             f"Machine: {machine_description(device)}.", "",
             "Command: `python benchmarks/throughput.py "
             + " ".join(argv if argv is not None else sys.argv[1:]) + "`", "",
             "Training rows/s over the epochs after the first (fixed costs excluded, see "
             "the script's docstring), counting the rows a model's training steps see per "
             "epoch (CATENets: min(round(rows / batch) * batch, rows - 1)); 'vs plain' is "
             "the ratio to the plain torch loop at the same rows and batch size in this "
             "run.", ""] + notes + [
             "", "| rows | batch | model | train rows/s | vs plain | predict rows/s |",
             "|---|---|---|---|---|---|"]
    start_all = time.perf_counter()
    for n in args.rows:
        X, y, t = make_table(n)
        for batch in args.batch:
            if batch > n:
                continue
            plain_rate = None
            for key in [m for m in args.models if m in runners]:
                if key == "catenets" and n > args.catenets_max_rows:
                    continue
                if key == "cfr-wass" and n > args.cfr_max_rows:
                    continue
                label, runner = runners[key]
                try:
                    rate, pred = measure(runner, X, y, t, args.epochs, batch, device)
                except Exception as exc:  # noqa: BLE001 - report and go on
                    lines.append(f"| {n:,} | {batch:,} | {label} | failed: "
                                 f"{type(exc).__name__}: {str(exc)[:80]} | | |")
                    print(lines[-1], flush=True)
                    continue
                if key == "plain":
                    plain_rate = rate
                ratio = f"{rate / plain_rate:.2f}" if plain_rate else "—"
                lines.append(f"| {n:,} | {batch:,} | {label} | {rate / 1e6:.3f} M "
                             f"| {ratio} | {pred / 1e6:.2f} M |")
                print(lines[-1], flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        del X, y, t
    lines += ["", f"Total wall time {time.perf_counter() - start_all:.0f} s."]
    print("\n".join(lines))
    save_markdown(lines, out)


if __name__ == "__main__":
    main()
