"""Options that would have no effect are refused, not silently ignored (audit s9, D7):
the AIPW options with ``--no-inference``, ``--force`` without ``--out``, and
``bench --sequential-subset`` with ``--no-batch``. Only options the user gave count:
their defaults never trigger a refusal."""
import pytest

import causalnn.benchmark
import causalnn.cli._main as cli
from causalnn.benchmark import run_benchmark
from causalnn.cli import main


@pytest.fixture(scope="module")
def toy_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("ignored") / "toy.csv"
    path.write_text("x,t,y\n" + "".join(f"{i % 7},{i % 2},{i % 3}\n" for i in range(30)))
    return str(path)


@pytest.fixture
def no_fit(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the fit ran before the options were checked")
    monkeypatch.setattr(cli, "_fit", refuse)
    monkeypatch.setattr(causalnn.benchmark, "run_benchmark", refuse)


def _estimate(path):
    return ["estimate", "--data", path, "--treatment", "t", "--outcome", "y",
            "--max-epochs", "2"]


def _refused(argv, capsys, expected):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err == f"causalnn: error: {expected}\n"


@pytest.mark.parametrize("given, named", [
    (["--target", "att"], "--target applies"),
    # the default value, given explicitly, is still an option the user asked for
    (["--target", "ate"], "--target applies"),
    (["--cv", "7"], "--cv applies"),
    (["--n-repeats", "3"], "--n-repeats applies"),
    (["--n-repeats", "3", "--target", "atc", "--cv", "7"],
     "--target, --cv, --n-repeats apply"),
])
def test_aipw_options_with_no_inference_are_refused(given, named, toy_csv, capsys,
                                                    no_fit):
    them = "it" if named.endswith("applies") else "them"
    _refused(_estimate(toy_csv) + ["--no-inference"] + given, capsys,
             f"{named} to the AIPW estimate, which --no-inference skips: drop {them} "
             "or --no-inference")


def test_force_without_out_is_refused(toy_csv, capsys, no_fit):
    _refused(_estimate(toy_csv) + ["--force"], capsys,
             "--force replaces an existing --out file; without --out nothing is "
             "written: pass --out FILE.csv or drop --force")
    _refused(["estimate", "--force"], capsys,   # the IHDP job too
             "--force replaces an existing --out file; without --out nothing is "
             "written: pass --out FILE.csv or drop --force")


def test_defaults_do_not_trigger_a_refusal(monkeypatch):
    """Parsed without the options, they are None (so a given one is told apart) and
    the estimate runs with the documented defaults."""
    args = cli.build_parser().parse_args(["estimate", "--no-inference"])
    assert (args.target, args.cv, args.n_repeats, args.force) == (None, None, None, False)
    seen = {}
    monkeypatch.setattr(cli, "_run_ihdp", lambda a: seen.update(vars(a)) or 0)
    assert main(["estimate"]) == 0
    assert (seen["target"], seen["cv"], seen["n_repeats"]) == ("ate", 5, 1)


def test_bench_sequential_subset_with_no_batch_is_refused(tmp_path, capsys, no_fit):
    argv = ["bench", "--datasets", "make_ihdp", "--models", "TARNet", "--replications",
            "2", "--quiet", "--no-plots", "--out", str(tmp_path / "o"), "--no-batch"]
    _refused(argv + ["--sequential-subset", "2"], capsys,
             "--sequential-subset times batched fits against one-at-a-time fits, and "
             "--no-batch fits every replication one at a time; pass one of them")
    assert not (tmp_path / "o").exists()


def test_run_benchmark_refuses_sequential_subset_without_batch():
    with pytest.raises(ValueError, match=r"sequential_subset=2 times batched fits .* "
                                         "batch=False fits nothing batched"):
        run_benchmark(["TARNet"], ["make_ihdp"], 2, batch=False, sequential_subset=2,
                      progress=False)
