"""make_multi_cause: the simulated rates and effects are what the docstring says."""
import numpy as np
import pytest

from causalnn.datasets import make_multi_cause


@pytest.mark.parametrize("prevalence", [0.05, 0.3])
def test_prevalence_is_the_realised_rate_of_the_causes(prevalence):
    # theta' Z spreads the logits (variance n_factors * loading_scale^2), which pulls
    # the rate towards 1/2 unless the baseline offsets it: prevalence=0.05 with 5
    # factors used to give 0.14
    data = make_multi_cause(n_samples=3000, n_causes=400, n_factors=5,
                            loading_scale=1.5, prevalence=prevalence, random_state=0)
    assert np.median(data.treatment.mean(0)) == pytest.approx(prevalence, abs=0.01)
    assert data.treatment.mean() == pytest.approx(prevalence, abs=0.01)


@pytest.mark.parametrize("prevalence", [0.0, 1.0, 1.5, -0.2, True, "0.3", None])
def test_prevalence_outside_the_unit_interval_is_refused(prevalence):
    with pytest.raises(ValueError, match="prevalence must be a number strictly between "
                                         "0 and 1"):
        make_multi_cause(n_samples=50, n_causes=5, n_factors=1, prevalence=prevalence)


def test_effects_are_the_outcome_slopes_and_the_data_repeat_by_seed():
    kw = dict(n_samples=400, n_causes=8, n_factors=2, confounding=0.0, noise=0.0)
    data = make_multi_cause(random_state=3, **kw)
    np.testing.assert_allclose(data.y, data.treatment @ data.effects, atol=1e-12)
    again = make_multi_cause(random_state=3, **kw)
    np.testing.assert_array_equal(again.treatment, data.treatment)


def test_make_films_franchises_take_a_tenth_of_the_films_each():
    from causalnn.datasets import make_films
    data = make_films(n_films=20000, n_actors=90, n_franchises=9, random_state=0)
    shares = np.bincount(data.franchise[data.franchise >= 0], minlength=9) / 20000
    np.testing.assert_allclose(shares, 0.1, atol=0.01)
    assert np.mean(data.franchise == -1) == pytest.approx(0.1, abs=0.01)
    # from 10 franchises on no film would be left without one and the shares would
    # shrink below the documented 10%
    with pytest.raises(ValueError, match="n_franchises must be at most 9"):
        make_films(n_franchises=10, n_actors=200)
