"""AverageEffectResult at the edges: a standard error of 0, and a bad alpha."""
import numpy as np
import pytest

from causalnn.inference import AverageEffectResult, estimate_average_effect


def _result(point_estimate, stderr):
    return AverageEffectResult(
        point_estimate=point_estimate, stderr=stderr, influence=None, target="ate",
        method="aipw", propensity=np.full(4, 0.5), treatment=np.array([0.0, 1.0] * 2),
        plugin_estimate=point_estimate, propensity_clip=0.01, n_clipped=0)


def test_zero_stderr_gives_infinite_z_and_zero_p_value():
    # outcome models that fit y exactly: every influence value is the estimate, 1
    y, t = np.array([1.0, 2.0, 1.0, 2.0]), np.array([0.0, 1.0, 0.0, 1.0])
    res = estimate_average_effect(y, t, np.ones(4), 2 * np.ones(4), np.full(4, 0.5))
    assert res.point_estimate == 1.0 and res.stderr == 0.0
    assert res.zstat == np.inf and res.pvalue == 0.0
    assert res.conf_int() == (1.0, 1.0)
    row = res.summary_frame().iloc[0]
    assert row["zstat"] == np.inf and row["pvalue"] == 0.0
    assert _result(-2.0, 0.0).zstat == -np.inf


def test_zero_estimate_with_zero_stderr_gives_nan_not_an_error():
    res = _result(0.0, 0.0)
    assert np.isnan(res.zstat) and np.isnan(res.pvalue)
    assert np.isnan(res.summary_frame().iloc[0]["pvalue"])


@pytest.mark.parametrize("bad", ["0.05", np.array([0.05, 0.1]), True, 0, 1.5,
                                 float("nan")])
def test_conf_int_refuses_a_bad_alpha_by_name(bad):
    res = _result(1.0, 0.5)
    with pytest.raises(ValueError, match=r"alpha must be a float in \(0, 1\); got"):
        res.conf_int(alpha=bad)
    with pytest.raises(ValueError, match="alpha must be"):
        res.summary_frame(alpha=bad)
