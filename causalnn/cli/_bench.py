"""``causalnn bench``: models x datasets x replications (see :mod:`causalnn.benchmark`)."""
import shlex
import sys
import tempfile
from pathlib import Path

__all__ = ["add_bench_parser", "run_bench"]


def _non_zero_int(text):
    """argparse ``type=`` for ``--n-jobs``: joblib counts from the end below 0
    (-1: every core) and has no meaning for 0."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a non-zero integer (-1: every core), "
                                         f"got {text!r}")
    return value


def add_bench_parser(commands):
    from ..benchmark import DATASETS, MODELS
    # imported here: _main imports this module before it defines them
    from ._main import _non_negative_int, _positive_int
    bench = commands.add_parser(
        "bench",
        help="benchmark estimators and their peers on simulated and IHDP data",
        description=(
            "Fit every model on every replication of every dataset (the same "
            "replications and splits for all), print one table of mean ± standard error "
            "(median) per metric, and write results.md, results.csv, results.json and "
            "PNG plots (with matplotlib) under --out. Peers (EconML, CATENets) run when "
            "installed; the table lists those that could not run and why. The run's "
            "settings and each finished replication are recorded in --out as the grid "
            "runs, so an interrupted or crashed run continues with --resume."))
    bench.add_argument("--datasets", nargs="+", default=["ihdp"], metavar="NAME",
                       help=f"datasets, from {', '.join(DATASETS)} (default: ihdp)")
    bench.add_argument("--replications", type=_positive_int, default=10,
                       help="replications per dataset (ihdp: at most 10; default 10)")
    bench.add_argument("--models", nargs="+", default=None, metavar="NAME",
                       help="models (default: all that apply and are installed); "
                            "quote names with spaces. Known: " + "; ".join(MODELS))
    bench.add_argument("--causalnn-only", action="store_true",
                       help="only causalnn's estimators (no peers or baselines)")
    bench.add_argument("--seed", type=_non_negative_int, default=0,
                       help="replication r of a model gets seed + r, of a simulated "
                            "dataset seed * 100003 + r (default 0)")
    bench.add_argument("--device", default="auto", metavar="{auto,cpu,cuda}",
                       help="causalnn's device: auto (the default) uses CUDA when "
                            "available; checked before the grid, as by estimate "
                            "(with --backend dask, CUDA is left to the workers)")
    bench.add_argument("--n-jobs", type=_non_zero_int, default=1,
                       help="parallel work items (-1: one per core)")
    bench.add_argument("--threads", type=_positive_int, default=None,
                       help="torch threads per worker (1 on a shared machine)")
    bench.add_argument("--backend", default="loky",
                       help="joblib backend: loky (default), threading, "
                            "multiprocessing, sequential, or dask")
    bench.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="Dask scheduler address for --backend dask (default: a "
                            "local cluster)")
    bench.add_argument("--no-batch", action="store_true",
                       help="fit every replication one at a time (no fit_many)")
    bench.add_argument("--shared-split", action="store_true",
                       help="give every replication replication 1's split (lets the IHDP "
                            "files run as one batched fit; default: their own splits)")
    bench.add_argument("--batch-size", type=_positive_int, default=None,
                       help="at most this many replications per batched fit")
    bench.add_argument("--sequential-subset", type=_non_negative_int, default=0,
                       metavar="K",
                       help="also fit the first K replications of each batched model "
                            "one at a time, to time the batched fit against sequential "
                            "fits (scale the per-replication time to the grid); "
                            "not with --no-batch")
    bench.add_argument("--out", default="bench_results",
                       help="output folder (default bench_results); one that already "
                            "holds results, plots or a run record is refused without "
                            "--force or --resume")
    bench.add_argument("--force", action="store_true",
                       help="replace the results, plots and run record already in --out")
    bench.add_argument("--resume", action="store_true",
                       help="continue the interrupted or crashed run recorded in --out: "
                            "give it the same options (models, datasets, replications, "
                            "seed, device, threads, batching, split; --n-jobs and "
                            "--backend may differ); replications recorded there, ok or "
                            "failed, are kept, the rest run with the seeds and splits of "
                            "one uninterrupted run")
    bench.add_argument("--no-plots", action="store_true")
    bench.add_argument("--readme", default=None, metavar="FILE",
                       help="also put the table between the benchmark markers of FILE")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    return bench


def _check_out_folder(out, force, resume=False):
    """Fail before the grid, not after it, when ``--out`` cannot or must not be written:
    it is a file, it holds an earlier run's results, plots or run record (without
    ``--force`` or ``--resume``; the same check as
    :func:`causalnn.benchmark.write_results`), or it cannot be written to."""
    from ..benchmark._report import check_out_folder
    from ._main import UsageError
    out = Path(out)
    try:
        # --resume appends to the run recorded there (run_benchmark checks that it is
        # this one) and replaces only that run's outputs
        check_out_folder(out, force or resume, flag="--force", resume_flag="--resume")
    except (FileExistsError, NotADirectoryError) as exc:
        raise UsageError(f"--out: {exc}") from None
    # the folder is made when the run starts; until then its nearest existing parent must
    # be a writable folder. Probe by creating a scratch file: permission bits alone
    # miss read-only file systems, and os.access is always true for root
    existing = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--out: cannot make {out}: {existing} is a file")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".causalnn-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"--out: cannot write to {existing}: {exc.strerror or exc}"
                         ) from None


def run_bench(args, argv=None):
    from ..benchmark import (MODELS, plot_results, run_benchmark, update_readme,
                             write_results)
    from ..benchmark._report import check_readme
    from ._main import UsageError
    models = args.models
    if args.causalnn_only:
        from ..benchmark._datasets import check_datasets, dataset_kind
        check_datasets(args.datasets, args.replications)
        kinds = {dataset_kind(d) for d in args.datasets}
        models = [m for m in (models or MODELS) if m in MODELS
                  and MODELS[m].family == "causalnn" and set(MODELS[m].kinds) & kinds]
        if not models:
            asked = "the --models given" if args.models else "causalnn's estimators"
            raise UsageError(f"--causalnn-only: none of {asked} is a causalnn estimator "
                             f"that fits the datasets {', '.join(args.datasets)}")
    if args.backend != "dask" and args.scheduler:
        raise ValueError("--scheduler: only used with --backend dask.")
    if args.no_batch and args.sequential_subset:
        # it would be ignored: there is no batched fit to time
        raise UsageError("--sequential-subset times batched fits against one-at-a-time "
                         "fits, and --no-batch fits every replication one at a time; "
                         "pass one of them")
    if args.no_batch and args.batch_size is not None:
        # it would be ignored, and recorded: a resume with another value was refused
        raise UsageError("--batch-size bounds the replications of one batched fit, and "
                         "--no-batch fits every replication one at a time; pass one "
                         "of them")
    if args.resume and args.force:
        raise UsageError("--resume and --force contradict each other: --resume "
                         "continues the run recorded in --out, --force deletes it; "
                         "pass one of them")
    # the outputs are checked before the grid, which may run for hours
    if args.readme:
        try:
            check_readme(args.readme)
        except ValueError as exc:
            raise UsageError(f"--{exc}") from None
    _check_out_folder(args.out, args.force, args.resume)
    try:
        result = run_benchmark(
            models, args.datasets, args.replications, seed=args.seed,
            device=args.device, n_jobs=args.n_jobs, backend=args.backend,
            scheduler=args.scheduler, batch=not args.no_batch,
            batch_size=args.batch_size, sequential_subset=args.sequential_subset,
            threads=args.threads, shared_split=args.shared_split,
            progress=not args.quiet, out=args.out, resume=args.resume,
            force=args.force)
    except (ValueError, FileNotFoundError) as exc:
        # the record's checks come before the grid; name the option, not the argument
        if str(exc).startswith("resume: "):
            raise UsageError(f"--{exc}") from None
        raise
    words = sys.argv[1:] if argv is None else list(argv)
    command = "causalnn " + shlex.join(words)
    if result["interrupted"] and not result["records"]:
        print("causalnn: interrupted before any replication finished; no results "
              f"written ({args.out} holds the run's settings: --resume continues it)",
              file=sys.stderr)
        return 130
    # the run recorded in --out (--force deleted an earlier one's files when it began):
    # write_results replaces its earlier outputs there, e.g. an interrupted write's
    markdown = write_results(result, args.out, command, force=args.force)
    paths = [] if args.no_plots else plot_results(result, args.out)
    print(markdown)
    print(f"written to {args.out}/results.md, results.csv, results.json"
          + (f" and {len(paths)} PNG plot(s)" if paths else ""))
    if result["interrupted"]:
        # a partial table never replaces the README's
        print(f"causalnn: interrupted after {len(result['records'])}/"
              f"{result['planned']} replications; the partial results are in {args.out}"
              + (f" ({args.readme} left as it was)" if args.readme else "")
              + "; --resume continues the run", file=sys.stderr)
        return 130
    if args.readme:
        update_readme(args.readme, markdown)
        print(f"table put in {args.readme}")
    # failed replications are in the table; the run itself succeeded
    return 0
