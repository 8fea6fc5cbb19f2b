"""``causalnn bench``: models x datasets x replications (see :mod:`causalnn.benchmark`)."""
import shlex
import sys

__all__ = ["add_bench_parser", "run_bench"]


def add_bench_parser(commands):
    from ..benchmark import DATASETS, MODELS
    bench = commands.add_parser(
        "bench",
        help="benchmark estimators and their peers on simulated and IHDP data",
        description=(
            "Fit every model on every replication of every dataset (the same "
            "replications and splits for all), print one table of mean ± standard error "
            "(median) per metric, and write results.md, results.csv, results.json and "
            "PNG plots (with matplotlib) under --out. Peers (EconML, CATENets) run when "
            "installed; the table lists those that could not run and why."))
    bench.add_argument("--datasets", nargs="+", default=["ihdp"], metavar="NAME",
                       help=f"datasets, from {', '.join(DATASETS)} (default: ihdp)")
    bench.add_argument("--replications", type=int, default=10,
                       help="replications per dataset (ihdp: at most 10; default 10)")
    bench.add_argument("--models", nargs="+", default=None, metavar="NAME",
                       help="models (default: all that apply and are installed); "
                            "quote names with spaces. Known: " + "; ".join(MODELS))
    bench.add_argument("--causalnn-only", action="store_true",
                       help="only causalnn's estimators (no peers or baselines)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--device", default="auto", help="causalnn's device (default auto)")
    bench.add_argument("--n-jobs", type=int, default=1, help="parallel work items")
    bench.add_argument("--threads", type=int, default=None,
                       help="torch threads per worker (1 on a shared machine)")
    bench.add_argument("--backend", default="loky",
                       help="joblib backend: loky (default), threading, or dask")
    bench.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="Dask scheduler address for --backend dask (default: a "
                            "local cluster)")
    bench.add_argument("--no-batch", action="store_true",
                       help="fit every replication one at a time (no fit_many)")
    bench.add_argument("--shared-split", action="store_true",
                       help="give every replication replication 1's split (lets the IHDP "
                            "files run as one batched fit; default: their own splits)")
    bench.add_argument("--batch-size", type=int, default=None,
                       help="at most this many replications per batched fit")
    bench.add_argument("--sequential-subset", type=int, default=0, metavar="K",
                       help="also fit the first K replications of each batched model "
                            "one at a time, to time the batched fit against sequential "
                            "fits (scale the per-replication time to the grid)")
    bench.add_argument("--out", default="bench_results",
                       help="output folder (default bench_results)")
    bench.add_argument("--no-plots", action="store_true")
    bench.add_argument("--readme", default=None, metavar="FILE",
                       help="also put the table between the benchmark markers of FILE")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    return bench


def run_bench(args, argv=None):
    from ..benchmark import (MODELS, plot_results, run_benchmark, update_readme,
                             write_results)
    models = args.models
    if args.causalnn_only:
        from ..benchmark._datasets import check_datasets, dataset_kind
        check_datasets(args.datasets, args.replications)
        kinds = {dataset_kind(d) for d in args.datasets}
        models = [m for m in (models or MODELS) if m in MODELS
                  and MODELS[m].family == "causalnn" and set(MODELS[m].kinds) & kinds]
    if args.backend != "dask" and args.scheduler:
        raise ValueError("scheduler: only used with --backend dask.")
    result = run_benchmark(
        models, args.datasets, args.replications, seed=args.seed, device=args.device,
        n_jobs=args.n_jobs, backend=args.backend, scheduler=args.scheduler,
        batch=not args.no_batch, batch_size=args.batch_size,
        sequential_subset=args.sequential_subset, threads=args.threads,
        shared_split=args.shared_split,
        progress=not args.quiet)
    words = sys.argv[1:] if argv is None else list(argv)
    command = "causalnn " + shlex.join(words)
    markdown = write_results(result, args.out, command)
    paths = [] if args.no_plots else plot_results(result, args.out)
    print(markdown)
    print(f"written to {args.out}/results.md, results.csv, results.json"
          + (f" and {len(paths)} PNG plot(s)" if paths else ""))
    if args.readme:
        update_readme(args.readme, markdown)
        print(f"table put in {args.readme}")
    # failed replications are in the table; the run itself succeeded
    return 0
