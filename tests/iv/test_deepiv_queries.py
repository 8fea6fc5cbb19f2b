"""What DeepIV's queries guard against: treatment levels outside the fitted range (h is
extrapolated there) and EconML's argument order for ``marginal_effect``."""
import warnings

import numpy as np
import pytest

from causalnn import DeepIV
from causalnn.datasets import make_demand
from causalnn.exceptions import ExtrapolationWarning


@pytest.fixture(scope="module")
def fitted():
    data = make_demand(600, rho=0.5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DeepIV(first_stage_layers=(8,), outcome_layers=(8,), n_components=2,
                     max_epochs=2, random_state=0, device="cpu").fit(
            data.X, data.y, treatment=data.treatment, instrument=data.instrument)
    return est, data


def test_levels_outside_the_fitted_range_warn_by_name(fitted):
    est, data = fitted
    low, high = np.min(data.treatment), np.max(data.treatment)
    np.testing.assert_array_equal(est.treatment_range_, [[low], [high]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        est.effect(data.X, T0=low, T1=high)  # the range's own ends: no warning
        est.marginal_effect(data.X, T=data.treatment)
        est.first_stage_log_likelihood(data.X, data.treatment + 100.0, data.instrument)
    # predict(X) compares the levels 0 and 1, as EconML's does: prices lie far above
    with pytest.warns(ExtrapolationWarning) as record:
        est.predict(data.X)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2 and messages[0].startswith("T0 holds treatment levels")
    n = len(data.X)
    assert (f"column 0: [{low:.4g}, {high:.4g}]) in {n} of {n} rows (100%)"
            in messages[0])
    assert messages[1].startswith("T1 holds")
    per_row = np.where(np.arange(len(data.X)) % 4 == 0, high + 1.0, low)
    with pytest.warns(ExtrapolationWarning, match=r"rows \(25%\)"):
        est.marginal_effect(data.X, T=per_row)
    with pytest.warns(ExtrapolationWarning, match="^treatment holds"):
        est.predict_outcome(data.X, low - 1.0)
    one_row = np.where(np.arange(len(data.X)) == 0, high + 1.0, low)
    with pytest.warns(ExtrapolationWarning, match=rf"in 1 of {n} rows \(<1%\)"):
        est.predict_outcome(data.X, one_row)
    with warnings.catch_warnings():  # the range's ends as a float32 copy may round out
        warnings.simplefilter("error", ExtrapolationWarning)
        est.predict_outcome(data.X, np.asarray(data.treatment, dtype=np.float32))
        est.predict_outcome(data.X, high * (1 + float(np.finfo(np.float32).eps) / 2))


def test_an_estimator_pickled_without_a_range_is_not_checked(fitted):
    est, data = fitted
    import copy
    old = copy.deepcopy(est)
    del old.treatment_range_  # as pickled before the attribute existed
    with pytest.warns(ExtrapolationWarning):
        expected = est.effect(data.X, T0=0.0, T1=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        np.testing.assert_array_equal(old.effect(data.X, T0=0.0, T1=1.0), expected)


def test_marginal_effect_takes_the_treatment_by_keyword(fitted):
    # EconML's marginal_effect(T, X) takes them the other way round: with as many
    # treatment columns as covariates a positional call in its order would return the
    # gradient at the wrong point without any error
    est, data = fitted
    with pytest.raises(TypeError, match="positional argument"):
        est.marginal_effect(data.X, data.treatment)
    assert est.marginal_effect(data.X, T=data.treatment).shape == (len(data.X),)
