"""Warnings attributed to the user's code."""
import contextlib
import os
import re
import sys
import threading
import warnings

__all__ = ["warn_at_caller", "shared_filter"]

# warnings.catch_warnings saves the process-wide filter list on entry and puts that
# copy back on exit (Python < 3.14, or without -X context_aware_warnings): two blocks
# overlapping in threads restore each other's copies, and the last one out can leave
# its "ignore" in place for good. causalnn's own blocks share one filter instead: the
# first in adds it, the last out removes just that filter (never a whole saved list,
# so the filters another thread added or removed meanwhile stay as that thread left
# them).
_filter_lock = threading.Lock()
_filter_users = {}


def _filter_tuple(action, message, category):
    """The entry ``warnings.filterwarnings(action, message, category)`` puts in
    ``warnings.filters``."""
    return (action, re.compile(message, re.I) if message else None, category, None, 0)


@contextlib.contextmanager
def shared_filter(action="ignore", *, message="", category=Warning):
    """``warnings.filterwarnings(action, message, category)`` for the block, safe
    against causalnn's other blocks overlapping in threads (the user's own
    ``catch_warnings`` in another thread still is not: Python's filter list is
    process-wide). Keep ``message``/``category`` as narrow as the block needs: the
    filter applies to every thread while any block holds it."""
    key = (action, message, category)
    with _filter_lock:
        entry = _filter_users.get(key)
        if entry is None:
            added = _filter_tuple(action, message, category)
            # filterwarnings moves an equal filter of the caller's to the front: note
            # where it stood, to put it back there rather than remove it at the end
            at = (warnings.filters.index(added) if added in warnings.filters
                  else None)
            warnings.filterwarnings(action, message=message, category=category)
            entry = _filter_users[key] = [0, at]
        entry[0] += 1
    try:
        yield
    finally:
        with _filter_lock:
            entry[0] -= 1
            if entry[0] == 0:
                del _filter_users[key]
                # remove just our filter: filters the user added meanwhile survive
                added = _filter_tuple(action, message, category)
                try:
                    warnings.filters.remove(added)
                except ValueError:
                    pass
                else:
                    if entry[1] is not None:  # the caller's own: back in its place
                        warnings.filters.insert(entry[1], added)
                # drop the call sites' cached "ignore" decisions (what every public
                # filter function does; private, so looked up where it exists)
                mutated = getattr(warnings, "_filters_mutated", None)
                if mutated is not None:
                    mutated()


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
