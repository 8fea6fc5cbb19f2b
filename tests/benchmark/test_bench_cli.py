"""``causalnn bench``: its options and outputs are checked before the grid runs, and a
folder of earlier results is never overwritten without ``--force``."""
import pytest

import causalnn.benchmark
from causalnn.benchmark import run_benchmark
from causalnn.cli import main

DEMAND = ["bench", "--datasets", "demand", "--replications", "1", "--models",
          "2SLS (poly3)", "--quiet", "--no-plots"]


@pytest.fixture
def no_grid(monkeypatch):
    """Fail the test if the grid starts: these errors must come before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the grid ran before the options were checked")
    monkeypatch.setattr(causalnn.benchmark, "run_benchmark", refuse)


def _refused(argv, capsys, expected):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith("causalnn: error: ") and expected in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


@pytest.mark.parametrize("held", ["results.md", "results.json", "errorbars_ihdp.png"])
def test_an_out_folder_holding_results_is_refused_without_force(tmp_path, capsys, no_grid,
                                                                held):
    (tmp_path / held).write_text("my precious notes\n")
    (tmp_path / "other.txt").write_text("not ours\n")
    _refused(DEMAND + ["--out", str(tmp_path)], capsys,
             f"--out: {tmp_path} already holds {held}; pass --force")
    assert (tmp_path / held).read_text() == "my precious notes\n"


def test_force_replaces_the_results_and_leaves_other_files(tmp_path, capsys):
    (tmp_path / "results.md").write_text("old run\n")
    (tmp_path / "other.txt").write_text("not ours\n")
    assert main(DEMAND + ["--out", str(tmp_path), "--force"]) == 0
    assert "| demand | 2SLS (poly3) | 1 / 1 |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "other.txt").read_text() == "not ours\n"


def test_an_empty_or_new_out_folder_needs_no_force(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("unrelated\n")
    assert main(DEMAND + ["--out", str(tmp_path)]) == 0
    assert main(DEMAND + ["--out", str(tmp_path / "new" / "deeper")]) == 0
    assert (tmp_path / "new" / "deeper" / "results.csv").exists()


def test_out_naming_a_file_is_refused_before_the_grid(tmp_path, capsys, no_grid):
    path = tmp_path / "notes.txt"
    path.write_text("x\n")
    _refused(DEMAND + ["--out", str(path)], capsys, "is a file, not a folder")
    _refused(DEMAND + ["--out", str(path / "sub")], capsys, f"{path} is a file")
    assert path.read_text() == "x\n"


def test_a_bad_readme_is_refused_before_the_grid(tmp_path, capsys, no_grid):
    _refused(DEMAND + ["--out", str(tmp_path / "o"), "--readme", str(tmp_path / "no.md")],
             capsys, "--readme: ")
    plain = tmp_path / "plain.md"
    plain.write_text("no markers here\n")
    _refused(DEMAND + ["--out", str(tmp_path / "o"), "--readme", str(plain)], capsys,
             "markers")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option, value", [
    ("--replications", "0"), ("--replications", "-3"), ("--threads", "0"),
    ("--threads", "-1"), ("--batch-size", "0"), ("--batch-size", "-2"),
    ("--sequential-subset", "-1"), ("--n-jobs", "0")])
def test_numeric_options_out_of_range_are_refused(option, value, tmp_path, capsys,
                                                  no_grid):
    argv = [a for a in DEMAND if a not in ("--replications", "1")] + [option, value]
    _refused(argv + ["--out", str(tmp_path)], capsys,
             f"argument {option}: expected a ")


@pytest.mark.parametrize("argv, expected", [
    (["--datasets", "ihdp", "--models", "DeepIV"],
     "models: 'DeepIV' fits none of the datasets ihdp; it takes iv data (demand)"),
    (["--datasets", "ihdp", "--models", "TARNet", "Deconfounder"],
     "'Deconfounder' fits none of the datasets ihdp"),
    (["--datasets", "ihdp", "--causalnn-only", "--models", "EconML T-learner"],
     "--causalnn-only: none of the --models given is a causalnn estimator"),
])
def test_a_model_that_fits_no_requested_dataset_is_an_error(argv, expected, tmp_path,
                                                            capsys):
    _refused(["bench", "--replications", "1", "--quiet", "--no-plots",
              "--out", str(tmp_path)] + argv, capsys, expected)
    assert list(tmp_path.iterdir()) == []


def test_run_benchmark_checks_its_numbers():
    with pytest.raises(ValueError, match="replications: expected a positive integer"):
        run_benchmark(["2SLS (poly3)"], ["demand"], 0, progress=False)
    for name, value in (("batch_size", 0), ("threads", -1), ("sequential_subset", -1)):
        with pytest.raises(ValueError, match=f"{name}: expected an integer of at least"):
            run_benchmark(["2SLS (poly3)"], ["demand"], 1, progress=False,
                          **{name: value})
    with pytest.raises(ValueError, match="'DeepIV' fits none of the datasets ihdp"):
        run_benchmark(["DeepIV"], ["ihdp"], 1, progress=False)
