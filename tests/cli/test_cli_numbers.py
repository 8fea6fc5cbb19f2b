"""`causalnn estimate` prints the numbers the public API gives for the same fit."""
import re

import numpy as np
import pandas as pd
import pytest

from causalnn import TARNet
from causalnn.cli import main

# short fits, as in tests/cli: their convergence and overlap warnings are expected
pytestmark = [pytest.mark.filterwarnings("ignore:Training reached max_epochs"),
              pytest.mark.filterwarnings("ignore:.*overlap poorly")]


def _frame(n=80):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    y = X[:, 0] + t * (1.0 + X[:, 1]) + 0.5 * rng.normal(size=n)
    return pd.DataFrame(X, columns=["age", "income", "score"]).assign(treated=t, y=y)


def _value(out, label):
    return float(re.search(rf"{re.escape(label)}\s+(-?[\d.]+)", out).group(1))


@pytest.mark.parametrize("target, repeats", [("att", 1), ("atc", 2)])
def test_printed_aipw_numbers_are_those_of_ate_inference(target, repeats, tmp_path, capsys):
    frame = _frame()
    path = tmp_path / "toy.csv"
    frame.to_csv(path, index=False)
    assert main(["estimate", "--data", str(path), "--treatment", "treated", "--outcome",
                 "y", "--model", "tarnet", "--max-epochs", "3", "--device", "cpu",
                 "--target", target, "--cv", "2", "--n-repeats", str(repeats)]) == 0
    out = capsys.readouterr().out
    X = frame[["age", "income", "score"]].to_numpy(float)
    t, y = frame["treated"].to_numpy(), frame["y"].to_numpy(float)
    est = TARNet(random_state=0, device="cpu", max_epochs=3).fit(X, y, treatment=t)
    result = est.ate_inference(X, y, treatment=t, target=target, method="aipw", cv=2,
                               n_repeats=repeats)
    label = target.upper()
    assert _value(out, f"AIPW {label}") == pytest.approx(result.point_estimate, abs=1e-4)
    assert _value(out, "standard error") == pytest.approx(result.stderr, abs=1e-4)
    rows = X[t == 1] if target == "att" else X[t == 0]
    assert _value(out, f"plug-in {label} (for comparison)") == pytest.approx(
        est.ate(rows), abs=1e-4)
    tau = est.effect(X)
    assert _value(out, "estimated ATE") == pytest.approx(tau.mean(), abs=1e-4)
    q05, q50, q95 = np.quantile(tau, [0.05, 0.5, 0.95])
    assert _value(out, "effect per row:  5%") == pytest.approx(q05, abs=1e-4)
    assert _value(out, " 50%") == pytest.approx(q50, abs=1e-4)
    assert _value(out, " 95%") == pytest.approx(q95, abs=1e-4)
    n_treated = int(t.sum())
    assert f"({n_treated} treated, {len(t) - n_treated} control)" in out


def test_ihdp_job_writes_every_rows_effect_and_infers_on_the_fitted_rows(tmp_path, capsys):
    from causalnn.datasets import load_ihdp
    out_file = tmp_path / "effects.csv"
    assert main(["estimate", "--model", "tarnet", "--max-epochs", "2", "--device", "cpu",
                 "--cv", "2", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    data = load_ihdp(1)
    fit = np.sort(np.concatenate([data.train_index, data.valid_index]))
    est = TARNet(random_state=0, device="cpu", max_epochs=2).fit(
        data.X[fit], data.y[fit], treatment=data.treatment[fit])
    written = pd.read_csv(out_file)
    assert list(written["row"]) == list(range(747))
    np.testing.assert_allclose(written["effect"], est.effect(data.X), atol=1e-6)
    result = est.ate_inference(data.X[fit], data.y[fit], treatment=data.treatment[fit],
                               target="ate", method="aipw", cv=2)
    assert _value(out, "AIPW ATE") == pytest.approx(result.point_estimate, abs=1e-4)


def test_a_numeric_index_col_is_not_a_covariate(tmp_path, capsys):
    frame = _frame().assign(customer=lambda f: 1000 + 7 * np.arange(len(f)))
    path, out_file = tmp_path / "ids.csv", tmp_path / "effects.csv"
    frame.to_csv(path, index=False)
    assert main(["estimate", "--data", str(path), "--treatment", "treated", "--outcome",
                 "y", "--model", "tarnet", "--max-epochs", "3", "--device", "cpu",
                 "--no-inference", "--index-col", "customer", "--out", str(out_file)]) == 0
    assert "3 covariates" in capsys.readouterr().out
    X = frame[["age", "income", "score"]].to_numpy(float)
    est = TARNet(random_state=0, device="cpu", max_epochs=3).fit(
        X, frame["y"].to_numpy(float), treatment=frame["treated"].to_numpy())
    written = pd.read_csv(out_file)
    assert list(written.columns) == ["customer", "effect"]
    assert written["customer"].tolist() == frame["customer"].tolist()
    np.testing.assert_allclose(written["effect"], est.effect(X), atol=1e-6)
