"""Benchmark causalnn's estimators against each other and their peers.

:func:`run_benchmark` runs models x datasets x replications (through joblib, or a Dask
cluster), the same replications and splits for every model; :func:`write_results` writes
the table (mean ± standard error and median per metric), CSV and JSON;
:func:`plot_results` draws the PNG plots. ``causalnn bench`` is the command line.
``run_benchmark(..., out=DIR)`` keeps a run record in ``DIR`` as the grid runs, and
``resume=True`` continues an interrupted or crashed run from it.
"""
from ._datasets import DATASETS, load_replication
from ._models import MODELS, ModelSpec, two_stage_least_squares
from ._report import (format_table, machine_description, plot_results, refuse_existing,
                      save_markdown, summarize, update_readme, write_results)
from ._runner import run_benchmark, score

__all__ = ["DATASETS", "MODELS", "ModelSpec", "format_table", "load_replication",
           "machine_description", "plot_results", "refuse_existing", "run_benchmark",
           "save_markdown",
           "score", "summarize",
           "two_stage_least_squares", "update_readme", "write_results"]
