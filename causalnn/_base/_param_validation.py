"""A small validator for estimator hyper-parameters.

Each estimator declares ``_parameter_constraints``: a mapping from parameter name to a
list of accepted forms. A form is a type (``int``, ``str``, ``callable``...), ``None``,
an :class:`Interval`, or a :class:`Options` set. ``validate_params`` raises a
``ValueError``/``TypeError`` that names the parameter when none of the forms accepts
the value. Kept separate from sklearn's private validator so that a scikit-learn
upgrade cannot break it.
"""
import math
import numbers

import numpy as np

__all__ = ["Interval", "LayerWidths", "Options", "validate_params"]


class Interval:
    """Real or integer interval, ``closed`` in ``{"both", "left", "right", "neither"}``."""

    def __init__(self, kind, left, right, closed="both"):
        self.kind = kind
        self.left = left
        self.right = right
        self.closed = closed

    def accepts(self, value):
        if isinstance(value, (bool, np.bool_)):
            return False
        if self.kind is numbers.Integral and not isinstance(value, numbers.Integral):
            return False
        # Python and NumPy numbers only: a Fraction or a Decimal would reach torch as it
        # is. math, not numpy: an int beyond 2**64 is no numpy scalar
        if not isinstance(value, (numbers.Integral, float, np.floating)):
            return False
        try:
            if not math.isfinite(value):
                return False
        except OverflowError:  # an int beyond the float range
            return False
        left_ok = self.left is None or (
            value >= self.left if self.closed in ("both", "left") else value > self.left
        )
        right_ok = self.right is None or (
            value <= self.right if self.closed in ("both", "right") else value < self.right
        )
        return left_ok and right_ok

    def __str__(self):
        kind = "an int" if self.kind is numbers.Integral else "a float"
        lo = "-inf" if self.left is None else self.left
        hi = "inf" if self.right is None else self.right
        lb = "[" if self.closed in ("both", "left") and self.left is not None else "("
        rb = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        return f"{kind} in the range {lb}{lo}, {hi}{rb}"


class Options:
    """A finite set of accepted values (typically strings)."""

    def __init__(self, *values):
        self.values = values

    def accepts(self, value):
        return isinstance(value, (str, bool, numbers.Number)) and value in self.values

    def __str__(self):
        return "one of {" + ", ".join(repr(v) for v in self.values) + "}"


class LayerWidths:
    """A non-empty tuple or list of positive ints (hidden-layer widths)."""

    def accepts(self, value):
        return isinstance(value, (tuple, list)) and len(value) > 0 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and v > 0
            for v in value)

    def __str__(self):
        return "a non-empty tuple of positive ints"


def _describe(form):
    if form is None:
        return "None"
    if form is callable:
        return "a callable"
    if isinstance(form, type):
        return f"an instance of {form.__name__}"
    return str(form)


def _accepts(form, value):
    if form is None:
        return value is None
    if form is callable:
        return callable(value)
    if isinstance(form, type):
        if form in (int, numbers.Integral) and isinstance(value, (bool, np.bool_)):
            return False
        return isinstance(value, form)
    return form.accepts(value)


def accepted(value, forms):
    """Whether ``value`` takes one of the accepted ``forms`` (a constraint list)."""
    return any(_accepts(form, value) for form in forms)


#: ``random_state`` as every estimator and simulator takes it (numpy's seed range)
RANDOM_STATE = [Interval(numbers.Integral, 0, 2**32 - 1), np.random.RandomState, None]


def validate_params(params, constraints, owner):
    """Check each parameter in ``params`` against ``constraints``.

    Raises
    ------
    ValueError
        If a value has an accepted type but is out of range / not an option.
    TypeError
        If no accepted form has the value's type.
    """
    for name, value in params.items():
        forms = constraints.get(name)
        if forms is None or accepted(value, forms):
            continue
        described = " or ".join(_describe(f) for f in forms)
        type_only = all(isinstance(f, type) or f is None or f is callable for f in forms)
        error = TypeError if type_only else ValueError
        raise error(
            f"The {name!r} parameter of {owner} must be {described}; got {value!r}."
        )
