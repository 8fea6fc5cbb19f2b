"""Argument checks shared by the simulators: a wrong size or strength must be refused by
name, not surface as a numpy error or an all-NaN outcome."""
import numbers

import numpy as np


def check_int(value, name, low):
    """Refuse anything but an int (not a bool) of at least ``low``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}; got {value!r}.")


def check_real(value, name, *, low=None, high=None, low_open=False):
    """Refuse anything but a finite real number (not a bool) in ``[low, high]``
    (``(low, high]`` with ``low_open``); return it as a float."""
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and np.isfinite(value)
          and (low is None or (value > low if low_open else value >= low))
          and (high is None or value <= high))
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"<= {high}")
        where = f" {' and '.join(bounds)}" if bounds else ""
        raise ValueError(f"{name} must be a finite number{where}; got {value!r}.")
    return float(value)
