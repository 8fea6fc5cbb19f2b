"""Tests of the ``causalnn`` command line (``causalnn estimate``)."""
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from causalnn.cli import main
from causalnn.cli._main import build_parser
from causalnn.datasets import load_ihdp

FAST = ["--max-epochs", "3"]


@pytest.fixture(scope="module")
def toy_frame():
    rng = np.random.default_rng(0)
    n = 60
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    y = X[:, 0] + t * (1.0 + X[:, 1]) + 0.5 * rng.normal(size=n)
    frame = pd.DataFrame(X, columns=["age", "income", "score"])
    frame.insert(0, "id", [f"u{i}" for i in range(n)])
    frame["treated"] = t
    frame["y"] = y
    return frame


@pytest.fixture(scope="module")
def toy_csv(toy_frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "toy.csv"
    toy_frame.drop(columns="id").to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def toy_csv_with_id(toy_frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "toy_id.csv"
    toy_frame.to_csv(path, index=False)
    return str(path)


def _toy_args(path):
    return ["estimate", "--data", path, "--treatment", "treated", "--outcome", "y"]


# ---- the default job ------------------------------------------------------------------
def test_default_job_reports_ihdp_errors(capsys):
    assert main(["estimate"]) == 0
    out = capsys.readouterr().out
    assert "Dragonnet on IHDP replication 1" in out
    for label in ("in-sample", "out-of-sample", "estimated ATE", "true ATE",
                  "sqrt(PEHE)", "device", "fit time"):
        assert label in out
    # the true ATEs are those of the train + validation rows and of the test rows
    data = load_ihdp(1)
    fit_rows = np.concatenate([data.train_index, data.valid_index])
    true_row = next(line for line in out.splitlines() if "true ATE" in line).split()
    assert float(true_row[-2]) == pytest.approx(data.ite[fit_rows].mean(), abs=1e-4)
    assert float(true_row[-1]) == pytest.approx(data.ite[data.test_index].mean(), abs=1e-4)
    # the fitted effects explain the heterogeneity better than the best constant, whose
    # sqrt(PEHE) is the standard deviation of the true effects on those rows
    pehe_row = next(line for line in out.splitlines() if "sqrt(PEHE)" in line).split()
    for value, rows in zip(pehe_row[-2:], (fit_rows, data.test_index)):
        assert 0 < float(value) < np.std(data.ite[rows])


# ---- a user's CSV ---------------------------------------------------------------------
@pytest.mark.parametrize("model", ["tarnet", "cfr", "dragonnet"])
def test_csv_writes_one_effect_per_row(toy_csv, tmp_path, capsys, model):
    out_path = tmp_path / "effects.csv"
    code = main(_toy_args(toy_csv) + FAST + ["--model", model, "--out", str(out_path)])
    assert code == 0
    captured = capsys.readouterr()
    assert "estimated ATE" in captured.out and "fit time" in captured.out
    effects = pd.read_csv(out_path)
    assert list(effects.columns) == ["row", "effect"]
    assert effects["row"].tolist() == list(range(60))
    assert np.all(np.isfinite(effects["effect"]))
    # three epochs cannot reach early stopping: reported as one warning line
    assert captured.err.startswith("causalnn: warning: Training reached max_epochs=3")


def test_csv_without_out_prints_preview(toy_csv, capsys):
    assert main(_toy_args(toy_csv) + FAST) == 0
    out = capsys.readouterr().out
    assert "first 10 of 60 effects" in out
    assert "effect" in out


def test_csv_index_col_and_covariates(toy_csv_with_id, tmp_path, capsys):
    out_path = tmp_path / "effects.csv"
    code = main(_toy_args(toy_csv_with_id) + FAST + [
        "--index-col", "id", "--covariates", "age, income", "--out", str(out_path)])
    assert code == 0
    assert "2 covariates" in capsys.readouterr().out
    effects = pd.read_csv(out_path)
    assert list(effects.columns) == ["id", "effect"]
    assert effects["id"].tolist() == [f"u{i}" for i in range(60)]


def test_repeated_index_col_values_are_warned_about(toy_frame, tmp_path, capsys):
    frame = toy_frame.copy()
    frame.loc[[3, 7], "id"] = "u0"  # three rows now share the id u0
    path = tmp_path / "repeated_ids.csv"
    frame.to_csv(path, index=False)
    assert main(_toy_args(str(path)) + FAST + ["--index-col", "id", "--no-inference"]) == 0
    err = capsys.readouterr().err
    assert "warning: --index-col id repeats values (3 rows share an id" in err
    # unique ids: no such warning
    unique = tmp_path / "unique_ids.csv"
    toy_frame.to_csv(unique, index=False)
    assert main(_toy_args(str(unique)) + FAST + ["--index-col", "id", "--no-inference"]) == 0
    assert "repeats values" not in capsys.readouterr().err


def test_csv_is_reproducible_with_seed(toy_csv, tmp_path):
    paths = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for path in paths:
        assert main(_toy_args(toy_csv) + FAST + ["--seed", "3", "--out", str(path)]) == 0
    np.testing.assert_array_equal(pd.read_csv(paths[0])["effect"],
                                  pd.read_csv(paths[1])["effect"])


# ---- errors: one line, exit code 2 ----------------------------------------------------
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _variant(frame, tmp_path, name, **changes):
    frame = frame.drop(columns="id")
    for column, values in changes.items():
        frame[column] = values
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


ERROR_CASES = {
    "missing file": (
        lambda f, p: ["estimate", "--data", str(p / "nope.csv"), "--treatment", "treated",
                      "--outcome", "y"],
        "file not found"),
    "unknown treatment column": (
        lambda f, p: _toy_args(_variant(f, p, "a.csv"))[:4] + ["treat", "--outcome", "y"],
        "available columns: 'age', 'income', 'score', 'treated', 'y'"),
    "unknown covariates": (
        lambda f, p: _toy_args(_variant(f, p, "a.csv")) + ["--covariates", "age,foo"],
        "unknown column 'foo'"),
    "missing values": (
        lambda f, p: _toy_args(_variant(
            f, p, "nan.csv", age=np.where(np.arange(60) == 3, np.nan, f["age"]))),
        "missing values in 'age' (1 row)"),
    "non-binary treatment": (
        lambda f, p: _toy_args(_variant(f, p, "t2.csv", treated=np.arange(60) % 3)),
        "must hold 0/1 values; got 0, 1, 2"),
    "text treatment": (
        lambda f, p: _toy_args(_variant(
            f, p, "tyes.csv", treated=np.where(f["treated"] == 1, "yes", "no"))),
        "must hold 0/1 values; got no, yes"),
    "infinite outcome": (
        lambda f, p: _toy_args(_variant(
            f, p, "yinf.csv", y=np.where(np.arange(60) < 2, -np.inf, f["y"]))),
        "infinite values in 'y' (2 rows)"),
    "non-numeric covariate": (
        lambda f, p: _toy_args(_variant(f, p, "cat.csv", city="Paris")),
        "non-numeric covariate column 'city'"),
    "non-numeric outcome": (
        lambda f, p: _toy_args(_variant(f, p, "ystr.csv", y="high")),
        "--outcome column 'y' must be numeric"),
    "data without treatment": (
        lambda f, p: ["estimate", "--data", _variant(f, p, "a.csv"), "--outcome", "y"],
        "--data needs --treatment"),
    "data without outcome": (
        lambda f, p: ["estimate", "--data", _variant(f, p, "a.csv"), "--treatment", "t"],
        "--data needs --outcome"),
    "treatment without data": (
        lambda f, p: ["estimate", "--treatment", "treated"],
        "--treatment needs --data"),
    "empty file": (
        lambda f, p: ["estimate", "--data", _write(p, "empty.csv", ""), "--treatment", "a",
                      "--outcome", "b"],
        "is empty"),
    "header only": (
        lambda f, p: ["estimate", "--data", _write(p, "head.csv", "a,b,c\n"),
                      "--treatment", "a", "--outcome", "b"],
        "no data rows"),
    "malformed csv": (
        lambda f, p: ["estimate", "--data", _write(p, "bad.csv", "a,b,c\n1,2,3\n4,5,6,7,8\n"),
                      "--treatment", "a", "--outcome", "b"],
        "could not parse"),
    "repeated outcome column": (
        lambda f, p: ["estimate", "--data", _write(p, "dup.csv", "a,t,y,y\n0.5,1,2,2\n"),
                      "--treatment", "t", "--outcome", "y"],
        "names 'y' (2 times); give each column its own name"),
    "one treatment arm": (
        lambda f, p: _toy_args(_variant(f, p, "arm.csv", treated=1)),
        "treatment arm 0 has 0 rows"),
    "output folder missing": (
        lambda f, p: _toy_args(_variant(f, p, "a.csv")) + ["--out", str(p / "no" / "x.csv")],
        "--out: folder"),
    "unknown model": (lambda f, p: ["estimate", "--model", "forest"], "invalid choice"),
    "bad max-epochs": (lambda f, p: ["estimate", "--max-epochs", "0"],
                       "expected a positive integer"),
    "bad device": (
        lambda f, p: _toy_args(_variant(f, p, "a.csv")) + ["--device", "tpu9"],
        "device='tpu9'"),
    "no command": (lambda f, p: [], "missing command"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line_with_exit_code_2(case, toy_frame, tmp_path, capsys):
    make_argv, expected = ERROR_CASES[case]
    code = main(make_argv(toy_frame, tmp_path))
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("causalnn: error: ")
    assert captured.err.count("\n") == 1 and captured.err.endswith("\n")
    assert "Traceback" not in captured.err
    assert expected in captured.err


def test_repeated_header_names_are_refused_and_distinct_ones_kept(tmp_path):
    # pandas would rename the second 't' / 'y' to 't.1' / 'y.1', a covariate that
    # copies the treatment or outcome (the audit: ATE 0.03 for a true 2.0)
    from causalnn.cli._main import UsageError, _read_csv
    for header, named in (("a,t,y,t,y,t", "'t' (3 times), 'y' (2 times)"),
                          ("a;t;y;y", "'y' (2 times)")):
        sep = ";" if ";" in header else ","
        path = _write(tmp_path, "dup.csv", header + "\n" + sep.join("1" * 6) + "\n")
        with pytest.raises(UsageError, match=re.escape(named)):
            _read_csv(path, None, sep=sep)
    # names that only look alike are different columns; empty names are pandas' to number
    path = _write(tmp_path, "distinct.csv", "a,y,y.1,,\n1,2,3,4,5\n")
    assert list(_read_csv(path, None).columns) == ["a", "y", "y.1", "Unnamed: 3",
                                                   "Unnamed: 4"]


def test_help_and_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("causalnn ")
    assert main(["estimate", "--help"]) == 0
    assert "--treatment COL" in capsys.readouterr().out


# ---- as a program ---------------------------------------------------------------------
def _run_module(args, cwd):
    # one torch thread, as conftest.py sets in-process: faster for tiny networks and
    # steady when other processes share the cores
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "causalnn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_python_m_causalnn(toy_csv, tmp_path):
    out_path = tmp_path / "effects.csv"
    result = _run_module(_toy_args(toy_csv) + FAST + ["--out", str(out_path)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "estimated ATE" in result.stdout
    assert len(pd.read_csv(out_path)) == 60

    result = _run_module(_toy_args(toy_csv)[:4] + ["nope", "--outcome", "y"], tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("causalnn: error: --treatment: unknown column 'nope'")
    assert result.stderr.count("\n") == 1


# ---- never lose data (issue 6) ----------------------------------------------------------
def _refused(argv, capsys, expected):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith("causalnn: error: ") and expected in captured.err
    return captured


def test_out_equal_to_data_is_refused_and_the_input_untouched(toy_csv, capsys):
    before = open(toy_csv, "rb").read()
    for spelling in (toy_csv, os.path.join(os.path.dirname(toy_csv), ".", "toy.csv")):
        _refused(_toy_args(toy_csv) + FAST + ["--out", spelling, "--force"], capsys,
                 "is the --data file")
    assert open(toy_csv, "rb").read() == before


def test_existing_out_needs_force(toy_csv, tmp_path, capsys):
    out_path = tmp_path / "effects.csv"
    out_path.write_text("precious\n")
    _refused(_toy_args(toy_csv) + FAST + ["--out", str(out_path)], capsys,
             "already exists; pass --force")
    assert out_path.read_text() == "precious\n"
    assert main(_toy_args(toy_csv) + FAST + ["--out", str(out_path), "--force"]) == 0
    assert len(pd.read_csv(out_path)) == 60


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_unwritable_out_is_found_before_the_fit(toy_csv, capsys, monkeypatch):
    import causalnn.cli._main as cli

    def no_fit(*args, **kwargs):
        raise AssertionError("the fit ran before --out was checked")
    monkeypatch.setattr(cli, "_fit", no_fit)
    # /proc refuses new files even to root, for whom permission bits mean nothing
    _refused(_toy_args(toy_csv) + ["--out", "/proc/causalnn-effects.csv"], capsys,
             "--out: cannot write /proc/causalnn-effects.csv")


def test_a_saved_pandas_index_is_not_a_covariate(toy_frame, tmp_path, capsys):
    path = tmp_path / "indexed.csv"
    frame = toy_frame.drop(columns="id")
    frame.index = frame.index + 1000
    frame.to_csv(path)  # index written as a first column with an empty header
    out_path = tmp_path / "effects.csv"
    assert main(_toy_args(str(path)) + FAST + ["--out", str(out_path)]) == 0
    captured = capsys.readouterr()
    assert "3 covariates" in captured.out
    assert "causalnn: note: the first column of" in captured.err
    effects = pd.read_csv(out_path)
    assert effects["row"].tolist() == list(range(1000, 1060))
    # with --index-col naming another column, the unnamed one is still no covariate
    path = tmp_path / "indexed_id.csv"
    toy_frame.to_csv(path)
    assert main(_toy_args(str(path)) + FAST + ["--index-col", "id"]) == 0
    captured = capsys.readouterr()
    assert "3 covariates" in captured.out and "is left out" in captured.err


@pytest.mark.parametrize("no_scale", [False, True])
def test_infinite_covariates_are_reported_as_infinite(toy_frame, tmp_path, capsys, no_scale):
    age = np.where(np.arange(60) == 5, np.inf, toy_frame["age"])
    path = _variant(toy_frame, tmp_path, "inf.csv", age=age)
    _refused(_toy_args(path) + FAST + (["--no-scale"] if no_scale else []), capsys,
             "infinite values in 'age' (1 row)")


def test_sep_reads_other_separators(toy_frame, tmp_path, capsys):
    path = tmp_path / "semicolon.csv"
    toy_frame.drop(columns="id").to_csv(path, sep=";", index=False)
    _refused(_toy_args(str(path)), capsys, "pass --sep")
    assert main(_toy_args(str(path)) + FAST + ["--sep", ";"]) == 0
    assert "3 covariates" in capsys.readouterr().out


def test_main_estimator_parameters_reach_the_estimator():
    from causalnn.cli._main import _make_estimator

    args = build_parser().parse_args(
        ["estimate", "--model", "cfr", "--alpha", "0.5", "--ipm", "wasserstein",
         "--representation-layers", "16,8", "--head-layers", "4", "--batch-size", "32",
         "--patience", "7"])
    params = _make_estimator(args).get_params()
    assert (params["alpha"], params["ipm"], params["representation_layers"],
            params["head_layers"], params["batch_size"], params["patience"]) == (
        0.5, "wasserstein", (16, 8), (4,), 32, 7)
    # --ipm without --alpha takes the alpha tuned for that IPM
    args = build_parser().parse_args(["estimate", "--model", "cfr", "--ipm", "mmd_rbf"])
    assert _make_estimator(args).get_params()["alpha"] == 0.01


def test_cfr_options_are_refused_for_other_models(toy_csv, capsys):
    _refused(_toy_args(toy_csv) + ["--model", "dragonnet", "--alpha", "1"], capsys,
             "--alpha applies to --model cfr only")
    _refused(_toy_args(toy_csv) + ["--head-layers", "4,x"], capsys,
             "expected comma-separated positive layer widths")


def test_covariates_are_scaled_by_the_estimator(toy_frame, tmp_path, capsys):
    """The CLI hands scaling to the estimator (scale_features): the ATE does not depend
    on the units of a continuous covariate, and --no-scale turns the scaling off."""
    ates = {}
    for name, factor, extra in (("raw", 1.0, []), ("thousand", 1000.0, []),
                                ("thousand-unscaled", 1000.0, ["--no-scale"])):
        path = _variant(toy_frame, tmp_path, f"{name}.csv", age=toy_frame["age"] * factor)
        assert main(_toy_args(path) + FAST + extra) == 0
        out = capsys.readouterr().out
        line = next(line for line in out.splitlines() if "estimated ATE" in line)
        ates[name] = float(line.split()[-1])
    assert ates["thousand"] == pytest.approx(ates["raw"], abs=2e-3)
    assert ates["thousand-unscaled"] != pytest.approx(ates["raw"], abs=2e-3)


def test_a_large_outcome_offset_leaves_the_reported_ate_unchanged(toy_frame, tmp_path,
                                                                  capsys):
    y = np.round(toy_frame["y"] * 2**20) / 2**20  # y + 1e8 is exact in float64
    lines = []
    for offset in (0.0, 1e8):
        path = _variant(toy_frame, tmp_path, f"offset{offset:g}.csv", y=y + offset)
        assert main(_toy_args(path) + FAST) == 0
        out = capsys.readouterr().out
        lines.append(next(line for line in out.splitlines() if "estimated ATE" in line))
    assert lines[0] == lines[1]
    assert abs(float(lines[0].split()[-1])) > 0.05


# ---- the average effect with a standard error ------------------------------------------
def _reported(out, label):
    line = next(line for line in out.splitlines() if line.strip().startswith(label))
    return line.split()[-1]


@pytest.mark.parametrize("target", ["ate", "att"])
def test_reports_a_cross_fitted_aipw_estimate_with_an_interval(toy_csv, capsys, target):
    assert main(_toy_args(toy_csv) + FAST + ["--target", target, "--cv", "2"]) == 0
    out = capsys.readouterr().out
    label = target.upper()
    assert f"{label} on the rows of --data, doubly robust (2-fold cross-fitted AIPW)" in out
    estimate = float(_reported(out, f"AIPW {label}"))
    stderr = float(_reported(out, "standard error"))
    interval = next(line for line in out.splitlines() if "95% interval" in line).split()
    lower, upper = float(interval[-3]), float(interval[-1])
    # a normal interval: the estimate -/+ 1.96 standard errors (printed to 4 decimals)
    assert stderr > 0
    assert lower == pytest.approx(estimate - 1.959964 * stderr, abs=2e-4)
    assert upper == pytest.approx(estimate + 1.959964 * stderr, abs=2e-4)
    assert f"plug-in {label} (for comparison)" in out


def test_repeated_cross_fitting_is_reported(toy_csv, capsys):
    assert main(_toy_args(toy_csv) + FAST + ["--cv", "2", "--n-repeats", "3"]) == 0
    out = capsys.readouterr().out
    assert "(2-fold cross-fitted AIPW, median of 3 fold partitions)" in out
    assert float(_reported(out, "standard error")) > 0


def test_no_inference_skips_the_aipw_estimate(toy_csv, capsys):
    assert main(_toy_args(toy_csv) + FAST + ["--no-inference"]) == 0
    assert "AIPW" not in capsys.readouterr().out


def test_cv_below_two_is_refused(toy_csv, capsys):
    _refused(_toy_args(toy_csv) + FAST + ["--cv", "1"], capsys, "--cv must be at least 2")


def test_plug_in_att_is_the_mean_effect_over_the_treated_rows(tmp_path, capsys):
    """With tau = 1 + income and treatment chosen on income, the treated rows' mean
    effect (ATT) and the controls' (ATC) differ by about 1; the printed plug-in ATT is
    the fitted effects' mean over the treated rows."""
    rng = np.random.default_rng(0)
    n = 300
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-2 * X[:, 1]))).astype(int)
    y = X[:, 0] + t * (1.0 + X[:, 1]) + 0.1 * rng.normal(size=n)
    path = tmp_path / "att.csv"
    pd.DataFrame(X, columns=["age", "income", "score"]).assign(treated=t, y=y).to_csv(
        path, index=False)
    assert main(["estimate", "--data", str(path), "--treatment", "treated", "--outcome",
                 "y", "--model", "tarnet", "--max-epochs", "30", "--cv", "2",
                 "--target", "att"]) == 0
    out = capsys.readouterr().out
    plug_in = float(re.search(r"plug-in ATT \(for comparison\)\s+(-?[\d.]+)", out).group(1))
    att, atc = np.mean(1 + X[t == 1, 1]), np.mean(1 + X[t == 0, 1])
    assert att - atc > 0.8
    assert abs(plug_in - att) < abs(plug_in - atc) / 3


def test_the_summary_counts_only_the_columns_that_are_all_zero_or_one(toy_frame, tmp_path,
                                                                       capsys):
    """Only 0/1 columns are left unscaled, and the summary says how many: a count
    column that merely contains some 0s and 1s is standardised like any other."""
    frame = toy_frame.drop(columns="id").copy()
    frame["member"] = (frame["age"] > 0).astype(int)       # 0/1
    frame["visits"] = np.arange(len(frame)) % 4             # 0, 1, 2, 3
    path = tmp_path / "counts.csv"
    frame.to_csv(path, index=False)
    assert main(_toy_args(str(path)) + ["--max-epochs", "1", "--no-inference"]) == 0
    out = capsys.readouterr().out
    assert "5 covariates (standardised; 1 0/1 column left as it is)" in out


@pytest.mark.parametrize("every_row", [True, False])
def test_rows_ending_with_a_delimiter_are_read_in_place(toy_frame, tmp_path, capsys,
                                                        every_row):
    # pandas takes such rows' first field as a row label and shifts every column left:
    # the outcome would be read as the treatment. Also when only some rows end so.
    clean = tmp_path / "clean.csv"
    toy_frame.drop(columns="id").to_csv(clean, index=False)
    lines = clean.read_text().splitlines()
    data = [line + "," if every_row or i % 2 == 0 else line
            for i, line in enumerate(lines[1:])]
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("\n".join([lines[0]] + data) + "\n")
    estimates = []
    for path in (clean, trailing):
        assert main(_toy_args(str(path)) + FAST + ["--seed", "0"]) == 0
        captured = capsys.readouterr()
        assert "3 covariates" in captured.out
        estimates.append(next(line for line in captured.out.splitlines()
                              if "estimated ATE" in line))
        assert ("end with a delimiter" in captured.err) == (path == trailing)
    assert estimates[0] == estimates[1]


def test_a_row_label_column_without_header_is_still_a_label(toy_frame, tmp_path, capsys):
    # R's write.table writes one header field fewer than each row (the row names):
    # those rows do not end with an empty field and keep their labels
    path = tmp_path / "labelled.csv"
    frame = toy_frame.drop(columns="id")
    header = ",".join(frame.columns)
    rows = [f"r{i}," + ",".join(map(repr, row)) for i, row in
            enumerate(frame.to_numpy().tolist())]
    path.write_text("\n".join([header] + rows) + "\n")
    out_path = tmp_path / "effects.csv"
    assert main(_toy_args(str(path)) + FAST + ["--out", str(out_path)]) == 0
    captured = capsys.readouterr()
    assert "3 covariates" in captured.out and "delimiter" not in captured.err
    assert pd.read_csv(out_path)["row"].tolist() == [f"r{i}" for i in range(60)]


def test_a_labelled_file_whose_last_column_is_all_na_keeps_its_labels(tmp_path):
    # the rows are one field longer than the header (row labels), and the last column
    # is R's NA throughout: a value, not a delimiter ending the row
    from causalnn.cli._main import _read_csv
    path = tmp_path / "labelled_na.csv"
    path.write_text("t,y,x,note\nr1,0,1.5,2.0,NA\nr2,1,2.5,3.0,NA\nr3,0,0.5,1.0,NA\n")
    frame = _read_csv(str(path), None)
    assert list(frame.columns) == ["t", "y", "x", "note"]
    assert list(frame.index) == ["r1", "r2", "r3"]
    assert frame["y"].tolist() == [1.5, 2.5, 0.5] and frame["note"].isna().all()


# ---- the effects file (audit of session 15) -------------------------------------------
def test_index_col_ids_are_written_as_they_are_in_the_file(toy_frame, tmp_path, capsys):
    """Ids read as numbers would lose their leading zeros (00012 -> 12) and no longer
    join back to the user's table."""
    frame = toy_frame.copy()
    frame["id"] = [f"{i:05d}" for i in range(len(frame))]
    data = tmp_path / "ids.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "effects.csv"
    assert main(_toy_args(str(data)) + FAST + ["--index-col", "id", "--out", str(out)]) == 0
    ids = pd.read_csv(out, dtype={"id": str})["id"]
    assert ids.tolist() == frame["id"].tolist()


def test_a_failed_write_leaves_the_existing_out_file_whole(toy_csv, tmp_path, capsys,
                                                           monkeypatch):
    out = tmp_path / "effects.csv"
    out.write_text("precious\n")

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", disk_full)
    assert main(_toy_args(toy_csv) + FAST + ["--out", str(out), "--force"]) == 2
    assert (f"causalnn: error: --out: cannot write {out}: No space left on device "
            f"({out} was left as it was)") in capsys.readouterr().err
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["effects.csv"]  # no temp file


@pytest.mark.parametrize("spelling", ["", "newdir/"])
def test_out_naming_no_file_is_refused_before_the_fit(toy_csv, capsys, monkeypatch,
                                                      spelling):
    import causalnn.cli._main as cli

    def no_fit(*args, **kwargs):
        raise AssertionError("the fit ran before --out was checked")
    monkeypatch.setattr(cli, "_fit", no_fit)
    _refused(_toy_args(toy_csv) + ["--out", spelling], capsys, "names no file")


def test_index_col_named_effect_is_refused_with_out(toy_frame, tmp_path, capsys):
    """The effects file would hold two columns named 'effect': read back, the ids."""
    frame = toy_frame.rename(columns={"id": "effect"})
    data = tmp_path / "named.csv"
    frame.to_csv(data, index=False)
    _refused(_toy_args(str(data)) + FAST + ["--index-col", "effect", "--out",
                                            str(tmp_path / "e.csv")],
             capsys, "--index-col effect")


def test_a_closed_stdout_still_writes_out(toy_csv, tmp_path):
    """``causalnn estimate ... --out f | head -1`` with unbuffered output: the pipe
    closes while the summary prints; the effects file is written before that, and the
    exit status is that of a process ended by SIGPIPE, not an input error."""
    out = tmp_path / "effects.csv"
    command = (f"{sys.executable} -u -m causalnn estimate --data {toy_csv} --treatment "
               f"treated --outcome y --max-epochs 3 --out {out} | head -c 1 >/dev/null; "
               f"exit ${{PIPESTATUS[0]}}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(os.path.dirname(causalnn_path())),
         os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode in (0, 141), result.stderr
    assert "Broken pipe" not in result.stderr
    assert len(pd.read_csv(out)) == 60


def causalnn_path():
    import causalnn
    return causalnn.__file__


def test_data_from_a_pipe_is_read(toy_csv, tmp_path):
    """``--data /dev/stdin`` (or ``<(zcat ...)``): a pipe can be read once, the checks
    read the file several times; it was refused as 'empty'."""
    out = tmp_path / "effects.csv"
    with open(toy_csv, "rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "causalnn", "estimate", "--data", "/dev/stdin",
             "--treatment", "treated", "--outcome", "y", "--max-epochs", "3",
             "--no-inference", "--out", str(out)], stdin=stdin, capture_output=True,
            text=True, timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                [os.path.dirname(os.path.dirname(causalnn_path())),
                 os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(out)) == 60


def test_decimal_commas_are_read_with_decimal_and_hinted_without(toy_frame, tmp_path,
                                                                  capsys):
    frame = toy_frame.drop(columns="id")
    data = tmp_path / "comma.csv"
    frame.to_csv(data, index=False, sep=";", decimal=",")
    reference, out = tmp_path / "ref.csv", tmp_path / "out.csv"
    plain = tmp_path / "plain.csv"
    frame.to_csv(plain, index=False)
    args = ["--treatment", "treated", "--outcome", "y"] + FAST + ["--no-inference"]
    assert main(["estimate", "--data", str(plain), "--out", str(reference)] + args) == 0
    assert main(["estimate", "--data", str(data), "--sep", ";", "--decimal", ",",
                 "--out", str(out)] + args) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(reference))
    capsys.readouterr()
    _refused(["estimate", "--data", str(data), "--sep", ";"] + args, capsys,
             "pass --decimal ','")
    _refused(["estimate", "--data", str(data), "--decimal", ","] + args, capsys,
             "is also the field separator")


@pytest.mark.parametrize("option", ["--treatment", "--outcome", "--covariates"])
def test_index_col_naming_a_column_of_another_option_is_refused(toy_csv_with_id, capsys,
                                                                option):
    """It was read as the row ids first, so the other option then named an unknown
    column (after a warning about repeated ids)."""
    columns = {"--treatment": "treated", "--outcome": "y", "--covariates": "age"}
    columns[option] = "id" if option != "--covariates" else "id,age"
    argv = ["estimate", "--data", toy_csv_with_id, "--index-col", "id"] + FAST
    for name, value in columns.items():
        argv += [name, value]
    _refused(argv, capsys, "--index-col")


def test_no_batch_with_batch_size_is_refused(capsys):
    _refused(["bench", "--no-batch", "--batch-size", "3", "--out", "unused"], capsys,
             "--batch-size bounds the replications")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="others are refused /dev/stdout by the pre-fit write probe")
def test_out_to_dev_stdout_writes_into_the_pipe(toy_csv):
    """A device is written in place: the atomic write's rename beside it failed after
    the whole fit ("cannot write /dev/stdout")."""
    result = subprocess.run(
        [sys.executable, "-m", "causalnn", "estimate", "--data", toy_csv, "--treatment",
         "treated", "--outcome", "y", "--max-epochs", "3", "--no-inference", "--out",
         "/dev/stdout", "--force"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [os.path.dirname(os.path.dirname(causalnn_path())),
             os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("row,effect\n")
