"""Argument checks shared by the simulators: a wrong size or strength must be refused by
name, not surface as a numpy error or an all-NaN outcome. What a value may be is the
estimators' :class:`~causalnn._base._param_validation.Interval` (finite, not a bool);
only the message is the simulators' own."""
import numbers

from sklearn.utils import check_random_state

from .._base._param_validation import RANDOM_STATE, Interval, accepted


def check_int(value, name, low):
    """Refuse anything but an int (not a bool) of at least ``low``."""
    if not Interval(numbers.Integral, low, None).accepts(value):
        raise ValueError(f"{name} must be an int >= {low}; got {value!r}.")


def check_real(value, name, *, low=None, high=None, low_open=False):
    """Refuse anything but a finite real number (not a bool) in ``[low, high]``
    (``(low, high]`` with ``low_open``); return it as a float."""
    closed = "right" if low_open else "both"
    if not Interval(numbers.Real, low, high, closed=closed).accepts(value):
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"<= {high}")
        where = f" {' and '.join(bounds)}" if bounds else ""
        raise ValueError(f"{name} must be a finite number{where}; got {value!r}.")
    return float(value)


def check_seed(random_state):
    """The numpy RandomState a simulator draws from: ``random_state`` as the estimators
    take it (an int in [0, 2**32 - 1], a RandomState or None), refused by name."""
    if not accepted(random_state, RANDOM_STATE):
        raise ValueError(f"random_state must be an int in [0, 2**32 - 1], a "
                         f"numpy.random.RandomState or None; got {random_state!r}.")
    return check_random_state(random_state)
