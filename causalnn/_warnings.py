"""Warnings attributed to the user's code."""
import os
import sys
import warnings

__all__ = ["warn_at_caller"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_at_caller(message, category=UserWarning):
    """Issue a warning attributed to the first frame outside causalnn.

    A fixed ``stacklevel`` points inside the library whenever a call goes through
    another layer (an estimator's override, a cross-fitting helper, a training stage),
    and Python's default filter shows a warning once per place: attributed to the
    user's line, each call site of the user's shows it (what Python 3.12's
    ``skip_file_prefixes`` does).
    """
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            _PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
