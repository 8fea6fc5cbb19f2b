"""`causalnn bench` passes each option to run_benchmark."""
import pytest

import causalnn.benchmark
from causalnn.cli import main


class _Stop(Exception):
    pass


def test_bench_options_reach_run_benchmark(tmp_path, monkeypatch):
    seen = {}

    def capture(models, datasets, replications, **kwargs):
        seen.update(kwargs, models=models, datasets=datasets, replications=replications)
        raise _Stop

    monkeypatch.setattr(causalnn.benchmark, "run_benchmark", capture)
    with pytest.raises(_Stop):
        main(["bench", "--datasets", "make_ihdp", "--replications", "3", "--seed", "7",
              "--shared-split", "--threads", "2", "--batch-size", "2",
              "--device", "cpu", "--quiet", "--out", str(tmp_path / "out")])
    assert (seen["datasets"], seen["replications"], seen["seed"], seen["batch"],
            seen["shared_split"], seen["threads"], seen["batch_size"], seen["device"],
            seen["progress"]) == (["make_ihdp"], 3, 7, True, True, 2, 2, "cpu", False)
    # --no-batch (which --batch-size would contradict) on its own
    with pytest.raises(_Stop):
        main(["bench", "--datasets", "make_ihdp", "--no-batch", "--quiet", "--out",
              str(tmp_path / "out")])
    assert seen["batch"] is False and seen["batch_size"] is None
