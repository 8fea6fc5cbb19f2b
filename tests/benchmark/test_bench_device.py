"""``causalnn bench --device`` and ``run_benchmark(device=...)`` are checked before the
grid with the estimators' own rules, and the report never fails on a device this
machine lacks (audit s9, D6: ``--device cuda`` without CUDA ran the whole grid, failed
every causalnn fit, then crashed in ``write_results`` and lost the peers' results)."""
import pytest
import torch

import causalnn.benchmark._runner as runner
from causalnn.benchmark import machine_description, run_benchmark, write_results
from causalnn.benchmark._report import _run_device
from causalnn.cli import main

DEMAND = ["bench", "--datasets", "demand", "--replications", "1", "--models",
          "2SLS (poly3)", "--quiet", "--no-plots"]


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine without CUDA, whether or not it has a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def no_fit(monkeypatch):
    """Fail the test if any work item of the grid runs (a fit, warm-up included)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a work item ran before --device was checked")
    monkeypatch.setattr(runner, "run_unit", refuse)


def _error_line(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith("causalnn: error: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err


@pytest.mark.parametrize("device, expected", [
    ("cuda", "device='cuda' was requested but CUDA is not available here."),
    ("cuda:1", "device='cuda:1' was requested but CUDA is not available here."),
    ("foo", "device='foo' is not a valid torch device: "),
    ("meta", "device='meta' is not supported by causalnn's estimators: use 'auto', "
             "'cpu' or 'cuda'"),
])
def test_bench_refuses_a_device_before_any_fit(device, expected, no_cuda, no_fit,
                                               tmp_path, capsys):
    out = tmp_path / "out"
    err = _error_line(["bench", "--models", "TARNet", "EconML T-learner",
                       "--replications", "2", "--quiet", "--no-plots",
                       "--device", device, "--out", str(out)], capsys)
    assert expected in err
    assert not out.exists()   # not even the run record


def test_bench_and_estimate_give_the_same_device_message(no_cuda, no_fit, tmp_path,
                                                         capsys):
    data = tmp_path / "d.csv"
    data.write_text("x,t,y\n" + "".join(f"{i % 7},{i % 2},{i % 3}\n" for i in range(20)))
    for device in ("cuda", "foo"):
        bench = _error_line(DEMAND + ["--device", device, "--out", str(tmp_path / "o")],
                            capsys)
        estimate = _error_line(["estimate", "--data", str(data), "--treatment", "t",
                                "--outcome", "y", "--device", device, "--max-epochs",
                                "1", "--no-inference"], capsys)
        assert bench == estimate


def test_run_benchmark_checks_the_device_up_front(no_cuda, no_fit, tmp_path):
    with pytest.raises(ValueError, match="device='cuda' was requested but CUDA is not "
                                         "available here"):
        run_benchmark(["TARNet"], ["ihdp"], 1, device="cuda", progress=False,
                      out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="device='foo' is not a valid torch device"):
        run_benchmark(["TARNet"], ["ihdp"], 1, device="foo", progress=False)
    with pytest.raises(ValueError, match="not supported by causalnn's estimators"):
        run_benchmark(["TARNet"], ["ihdp"], 1, device="meta", progress=False)


def test_a_dask_cluster_may_have_the_gpu_the_client_lacks(no_cuda):
    runner._check_device("cuda", "dask")          # left to the workers
    runner._check_device("cuda:1", "dask")
    with pytest.raises(ValueError, match="device='foo' is not a valid torch device"):
        runner._check_device("foo", "dask")
    with pytest.raises(ValueError, match="not supported by causalnn's estimators"):
        runner._check_device("meta", "dask")
    with pytest.raises(ValueError, match="CUDA is not available here"):
        runner._check_device("cuda", "loky")


def test_cpu_and_auto_pass_and_the_grid_runs(no_cuda, tmp_path, capsys):
    for device in ("cpu", "auto"):
        out = tmp_path / device
        assert main(DEMAND + ["--device", device, "--out", str(out)]) == 0
        assert "| demand | 2SLS (poly3) | 1 / 1 |" in (out / "results.md").read_text()


def test_the_report_never_names_a_device_this_machine_lacks(no_cuda, tmp_path):
    """A result holding failed records on a CUDA device (made on another machine, or by
    a Dask worker) is written with its peers' rows, and no GPU is named."""
    result = run_benchmark(["2SLS (poly3)"], ["demand"], 1, progress=False)
    failed = dict(result["records"][0], model="TARNet", family="causalnn",
                  status="failed", error="ValueError: CUDA is not available",
                  device="cuda:3")
    result["records"].append(failed)
    assert _run_device(result) == "cpu"   # failed records describe no device
    markdown = write_results(result, tmp_path, command="cmd")
    assert "| demand | 2SLS (poly3) | 1 / 1 |" in markdown and "GPU" not in markdown
    for device in ("cuda", "cuda:3", "foo", "auto", None):
        assert "GPU" not in machine_description(device)


def test_run_device_comes_from_ok_records_or_the_requested_device():
    def result(*records, device="auto"):
        return {"device": device, "records": [
            {"status": status, "device": where} for status, where in records]}
    assert _run_device(result(("ok", "cuda:0"), ("ok", "cpu"))) == "cuda:0"
    assert _run_device(result(("failed", "cuda:1"), ("ok", "cpu"))) == "cpu"
    assert _run_device(result(("failed", "cuda"), device="cuda")) == "cuda"
    assert _run_device(result(device="cpu")) == "cpu"
