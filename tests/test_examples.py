"""The scripts in examples/ run to completion."""
import importlib.util
import math
from pathlib import Path


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    """Import ``examples/<name>.py`` as a module (examples/ is not a package)."""
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"causalnn_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ihdp_example(capsys):
    results = load_example("ihdp").main()
    assert set(results) == {"TARNet", "CFR (Wasserstein)", "Dragonnet"}
    for errors in results.values():
        assert all(math.isfinite(e) and e >= 0 for e in errors)
    out = capsys.readouterr().out
    assert "sqrt(PEHE)" in out and "Dragonnet" in out


def test_pipeline_gridsearch_example(capsys):
    load_example("pipeline_gridsearch").main()
    out = capsys.readouterr().out
    for section in ("GridSearchCV", "cross_validate", "cross_val_score", "best:"):
        assert section in out


def test_cevae_proxy_example(capsys):
    errors = load_example("cevae_proxy").main(n=300, max_epochs=3)
    assert set(errors) == {"difference in means", "CEVAE", "TARNet"}
    assert all(math.isfinite(e) and e >= 0 for e in errors.values())
    assert "validation ELBO" in capsys.readouterr().out


def test_deepiv_demand_example(capsys):
    results = load_example("deepiv_demand").main(n_samples=1000, max_epochs=10)
    assert set(results) == {"DeepIV", "instrument-blind"}
    assert all(math.isfinite(v) and v >= 0 for v in results.values())
    assert "mean dh/dp" in capsys.readouterr().out
