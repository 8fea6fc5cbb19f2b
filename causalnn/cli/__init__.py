"""The ``causalnn`` command line (``causalnn estimate ...``, or ``python -m causalnn``).

See :func:`main`; ``causalnn estimate --help`` lists the options.
"""
from ._main import main

__all__ = ["main"]
