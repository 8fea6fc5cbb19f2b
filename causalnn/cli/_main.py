"""The ``causalnn`` command line.

``causalnn estimate`` fits one of the neural estimators and reports the average and
per-row treatment effects, either on the shipped IHDP benchmark (no ``--data``: the true
effects are known, so the errors are reported too) or on a user's CSV file.

Errors in the input are reported as one line on stderr starting with
``causalnn: error:`` and exit code 2, never as a traceback. Only the public API of
causalnn is used here, so the command is also a worked example of it.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

import causalnn
from causalnn import CFRNet, Dragonnet, TARNet
from causalnn.datasets import load_ihdp
from causalnn.exceptions import TrainingDivergedError
from causalnn.metrics import ate_error, pehe
from causalnn.benchmark._report import write_atomically
from causalnn.cli._bench import add_bench_parser, run_bench

__all__ = ["main", "build_parser"]

PROG = "causalnn"
EXIT_USAGE = 2

MODELS = {"tarnet": TARNet, "cfr": CFRNet, "dragonnet": Dragonnet}
DEFAULT_MODEL = "dragonnet"
DEFAULT_SEED = 0
# the AIPW options' defaults; their parser default is None, so that one given together
# with --no-inference (which would ignore it) is told apart from one left out
INFERENCE_DEFAULTS = {"target": "ate", "cv": 5, "n_repeats": 1}
N_PREVIEW = 10  # rows of effects shown when --out is not given
# CFR's alpha per IPM, as the validation loss chose on IHDP
# (benchmarks/results/tune_issue6.md); used when --ipm is given without --alpha
TUNED_ALPHA = {"wasserstein": 0.1, "mmd_rbf": 0.01, "mmd_linear": 0.01}


class UsageError(Exception):
    """Bad input or arguments: reported as one ``causalnn: error:`` line, exit code 2."""


class _ArgumentParser(argparse.ArgumentParser):
    """argparse parser whose errors are one line (argparse prints usage plus an error
    line prefixed by the sub-command's prog, which is harder to grep and to test)."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---- argument types -------------------------------------------------------------------
def _number_type(kind, minimum, *, strict, description):
    """argparse ``type=`` for numbers of ``kind`` above ``minimum`` (``strict``: >)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not np.isfinite(value) or value < minimum or (
                strict and value == minimum):
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}")
        return value
    return parse


_positive_int = _number_type(int, 1, strict=False, description="a positive integer")
_non_negative_int = _number_type(int, 0, strict=False,
                                 description="a non-negative integer")
_positive_float = _number_type(float, 0.0, strict=True, description="a positive number")
_non_negative_float = _number_type(float, 0.0, strict=False,
                                   description="a non-negative number")


def _layer_list(text):
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive layer widths such as 200,200; got {text!r}")
    return widths


def _column_list(text):
    names = [name.strip() for name in text.split(",")]
    if not names or any(name == "" for name in names):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated column names, got {text!r}")
    return names


def build_parser():
    """Build the argument parser of the ``causalnn`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
        Its ``error`` raises :class:`UsageError` instead of exiting, so that ``main``
        reports every input error the same way.
    """
    parser = _ArgumentParser(
        prog=PROG,
        description="Neural causal-effect estimators (TARNet, CFR, Dragonnet).")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {causalnn.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    est = commands.add_parser(
        "estimate",
        help="fit an estimator and report treatment effects",
        description=(
            "Fit a neural estimator and report the average treatment effect (ATE) and "
            "per-row effects (CATE). Without --data, fits on the IHDP benchmark "
            "(replication 1, train + validation rows) and compares with the true "
            "effects in- and out-of-sample. With --data, fits on a CSV file whose "
            "--treatment column is 0/1 and whose other columns (or --covariates) "
            "are numeric."))
    data = est.add_argument_group("data (all optional: without --data, IHDP is used)")
    data.add_argument("--data", metavar="FILE.csv", help="CSV file with a header row")
    data.add_argument("--treatment", metavar="COL",
                      help="column of the 0/1 treatment (required with --data)")
    data.add_argument("--outcome", metavar="COL",
                      help="column of the outcome (required with --data)")
    data.add_argument("--covariates", metavar="A,B,...", type=_column_list,
                      help="covariate columns (default: all other columns)")
    data.add_argument("--index-col", metavar="COL",
                      help="column identifying the rows: copied to the output instead "
                           "of the row number and not used as a covariate")
    data.add_argument("--sep", metavar="CHAR", default=",",
                      help="field separator of --data (default: ','; e.g. ';' or "
                           "'\\t' for tab)")
    data.add_argument("--decimal", metavar="CHAR", default=".",
                      help="decimal mark of --data's numbers (default: '.'; ',' for "
                           "files written as 1,5 with --sep ';')")
    data.add_argument("--no-scale", action="store_true",
                      help="fit with scale_features=False: the estimator does not "
                           "standardise the non-binary covariates of --data (0/1 columns "
                           "are never standardised)")
    model = est.add_argument_group("model")
    model.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL,
                       help=f"estimator (default: {DEFAULT_MODEL})")
    model.add_argument("--seed", metavar="N", type=_non_negative_int, default=DEFAULT_SEED,
                       help=f"random_state of the estimator (default: {DEFAULT_SEED})")
    model.add_argument("--max-epochs", metavar="N", type=_positive_int, default=None,
                       help="maximum training epochs (default: the estimator's, 300)")
    model.add_argument("--learning-rate", metavar="LR", type=_positive_float, default=None,
                       help="learning rate (default: the estimator's, 1e-3)")
    model.add_argument("--alpha", metavar="A", type=_non_negative_float, default=None,
                       help="weight of the IPM penalty, --model cfr only (default: the "
                            "value tuned for the IPM: " + ", ".join(
                                f"{k} {v:g}" for k, v in TUNED_ALPHA.items()) + ")")
    model.add_argument("--ipm", choices=["mmd_linear", "mmd_rbf", "wasserstein"],
                       default=None,
                       help="IPM of --model cfr (default: the estimator's, wasserstein)")
    model.add_argument("--representation-layers", metavar="W,W,...", type=_layer_list,
                       default=None,
                       help="hidden widths of the shared representation (default: "
                            "200,200,200)")
    model.add_argument("--head-layers", metavar="W,W,...", type=_layer_list, default=None,
                       help="hidden widths of each outcome head (default: the "
                            "estimator's)")
    model.add_argument("--batch-size", metavar="N", type=_positive_int, default=None,
                       help="rows per gradient step (default: the estimator's)")
    model.add_argument("--patience", metavar="N", type=_positive_int, default=None,
                       help="early-stopping patience in epochs (default: the "
                            "estimator's)")
    model.add_argument("--device", default="auto", metavar="{auto,cpu,cuda}",
                       help="torch device; auto (the default) uses CUDA when available")
    model.add_argument("--verbose", action="store_true",
                       help="show training progress on stderr")
    inference = est.add_argument_group(
        "average effect (cross-fitted AIPW with a standard error, beside the plug-in)")
    inference.add_argument("--target", choices=["ate", "att", "atc"], default=None,
                           help="average over all rows (ate), the treated (att) or the "
                                f"controls (atc) (default: {INFERENCE_DEFAULTS['target']})")
    inference.add_argument("--cv", metavar="N", type=_positive_int, default=None,
                           help="cross-fitting folds, trained as one batched fit "
                                f"(default: {INFERENCE_DEFAULTS['cv']}; at least 2)")
    inference.add_argument("--n-repeats", metavar="R", type=_positive_int, default=None,
                           help="cross-fit on R random fold partitions and report the "
                                "median-rule aggregate (default: "
                                f"{INFERENCE_DEFAULTS['n_repeats']})")
    inference.add_argument("--no-inference", action="store_true",
                           help="skip the AIPW estimate (saves the cross-fitted fit); "
                                "not with --target, --cv or --n-repeats")
    out = est.add_argument_group("output")
    out.add_argument("--out", metavar="FILE.csv",
                     help="write one effect per row to this CSV (columns: the row "
                          "number or --index-col, and 'effect'); default: print the "
                          "first rows only")
    out.add_argument("--force", action="store_true",
                     help="replace --out if it exists (it is never the --data file); "
                          "needs --out")
    add_bench_parser(commands)
    return parser


# ---- model ---------------------------------------------------------------------------
def _make_estimator(args):
    # the estimators standardise the non-binary covariates themselves (scale_features)
    params = {"random_state": args.seed, "device": args.device,
              "verbose": 1 if args.verbose else 0, "scale_features": not args.no_scale}
    if args.max_epochs is not None:
        params["max_epochs"] = args.max_epochs
    if args.learning_rate is not None:
        params["learning_rate"] = args.learning_rate
    for option in ("alpha", "ipm"):
        if getattr(args, option) is not None:
            if args.model != "cfr":
                raise UsageError(f"--{option} applies to --model cfr only (got --model "
                                 f"{args.model})")
            params[option] = getattr(args, option)
    if args.ipm is not None and args.alpha is None:
        params["alpha"] = TUNED_ALPHA[args.ipm]
    for option in ("representation_layers", "head_layers", "batch_size", "patience"):
        if getattr(args, option) is not None:
            params[option] = getattr(args, option)
    return MODELS[args.model](**params)


def _with_warnings_printed(action):
    """Run ``action()``; its warnings become one ``causalnn: warning:`` line each
    instead of Python's two-line file:line format."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = action()
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"{PROG}: warning: {message}", file=sys.stderr)
    return result


def _fit(estimator, X, y, treatment):
    """Fit; return the seconds it took."""
    def fit():
        start = time.perf_counter()
        estimator.fit(X, y, treatment=treatment)
        return time.perf_counter() - start
    return _with_warnings_printed(fit)


def _print_average_effect(estimator, X, y, treatment, args, rows_name):
    """The cross-fitted AIPW estimate of ``args.target`` with its standard error and
    95% interval, beside the plug-in mean of the fitted model's effects."""
    if args.no_inference:
        return
    result = _with_warnings_printed(lambda: estimator.ate_inference(
        X, y, treatment=treatment, target=args.target, method="aipw", cv=args.cv,
        n_repeats=args.n_repeats))
    group = {"ate": X, "att": X[treatment == 1], "atc": X[treatment == 0]}[args.target]
    lower, upper = result.conf_int(0.05)
    label = args.target.upper()
    partitions = (f", median of {args.n_repeats} fold partitions"
                  if args.n_repeats > 1 else "")
    print(f"\n{label} on the {rows_name}, doubly robust ({args.cv}-fold cross-fitted "
          f"AIPW{partitions}):")
    _print_table([
        (f"AIPW {label}", _fmt(result.point_estimate)),
        ("standard error", _fmt(result.stderr)),
        ("95% interval", f"{_fmt(lower)} to {_fmt(upper)}"),
        (f"plug-in {label} (for comparison)", _fmt(estimator.ate(group))),
    ])
    if result.n_clipped:
        clip = result.propensity_clip
        # the count is the partition's whose estimate is nearest the median
        where = " in the partition nearest the median" if args.n_repeats > 1 else ""
        print(f"  ({result.n_clipped} row{'s' if result.n_clipped > 1 else ''} had "
              f"propensities clipped to [{clip:g}, {1 - clip:g}]{where})")


def _device_name(estimator):
    device = estimator.device_
    if device.type == "cuda":
        import torch  # only to name the GPU

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _fit_summary(estimator, elapsed):
    best = getattr(estimator, "best_epoch_", None)
    epochs = f"{estimator.n_iter_} epoch{'s' if estimator.n_iter_ != 1 else ''}"
    if best is not None:
        epochs += f", best epoch {best}"
    return f"{elapsed:.1f} s ({epochs})"


def _print_table(rows, *, numeric=True):
    """Print ``(label, value, ...)`` rows with the label column left-aligned and the
    value columns right-aligned when ``numeric`` (numbers line up on their decimal
    point), else left-aligned."""
    n_cols = max(len(row) for row in rows)
    rows = [tuple(row) + ("",) * (n_cols - len(row)) for row in rows]
    widths = [max(len(row[j]) for row in rows) for j in range(n_cols)]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) if numeric else cell.ljust(width)
            for cell, width in zip(row[1:], widths[1:])]
        print("  " + "   ".join(cells).rstrip())


def _fmt(value):
    return f"{value:.4f}"


# ---- IHDP job ------------------------------------------------------------------------
def _run_ihdp(args):
    data = load_ihdp(1)
    fit_rows = np.sort(np.concatenate([data.train_index, data.valid_index]))
    test_rows = data.test_index
    estimator = _make_estimator(args)
    elapsed = _fit(estimator, data.X[fit_rows], data.y[fit_rows], data.treatment[fit_rows])
    if args.out is not None:  # before anything is printed: see main's BrokenPipeError
        effects = pd.DataFrame({"effect": estimator.effect(data.X)})
        _write_effects(effects, args.out, index_label="row")

    name = type(estimator).__name__
    print(f"{name} on IHDP replication 1: fitted on {len(fit_rows)} rows "
          f"(train + validation), {len(test_rows)} test rows held out")
    print()
    results = {}
    for key, rows in (("in", fit_rows), ("out", test_rows)):
        X, ite = data.X[rows], data.ite[rows]
        estimate = estimator.ate(X)
        results[key] = {"ate": estimate, "true": float(np.mean(ite)),
                        "ate_error": ate_error(ite, estimate),
                        "pehe": pehe(ite, estimator.effect(X))}
    rows = [("", "in-sample", "out-of-sample")]
    for label, key in (("estimated ATE", "ate"), ("true ATE", "true"),
                       ("|ATE error|", "ate_error"), ("sqrt(PEHE)", "pehe")):
        rows.append((label, _fmt(results["in"][key]), _fmt(results["out"][key])))
    _print_table(rows)
    _print_average_effect(estimator, data.X[fit_rows], data.y[fit_rows],
                          data.treatment[fit_rows], args, "fitted rows")
    print()
    _print_table([("device", _device_name(estimator)),
                  ("fit time", _fit_summary(estimator, elapsed))], numeric=False)

    if args.out is not None:
        print(f"\nwrote {len(effects)} effects to {args.out}")
    return 0


# ---- CSV job -------------------------------------------------------------------------
def _read_csv(path, index_col, sep=",", decimal=".", shown=None):
    shown = shown or path  # the name the user gave (a pipe is read from a copy)
    if not os.path.exists(path):
        raise UsageError(f"--data: file not found: {path}")
    if os.path.isdir(path):
        raise UsageError(f"--data: {path} is a directory, not a CSV file")
    if not os.path.isfile(path):
        # a pipe (--data /dev/stdin, --data <(zcat table.csv.gz)) can be read once, and
        # the checks below read the file several times: read it from a copy
        with open(path, "rb") as source, tempfile.NamedTemporaryFile(
                prefix="causalnn-data-", suffix=".csv", delete=False) as copy:
            shutil.copyfileobj(source, copy)
        try:
            return _read_csv(copy.name, index_col, sep, decimal, shown=path)
        except UsageError as exc:
            raise UsageError(str(exc).replace(copy.name, path)) from None
        finally:
            os.unlink(copy.name)
    try:
        header = _refuse_repeated_names(path, sep)
        # the ids as written: read as numbers, 00123 would come back as 123
        ids = None if index_col is None else {index_col: str}
        frame = pd.read_csv(path, sep=sep, dtype=ids, decimal=decimal)
        if (_first_row_width(path, sep) == len(header) + 1
                and _last_fields_empty(path, sep, len(header))):
            # data rows one field longer than the header, that field empty: the rows
            # end with a delimiter. pandas took each row's first field as its label and
            # shifted every column one place left; read them where they stand
            print(f"{PROG}: warning: the data rows of {shown} end with a delimiter "
                  f"'{sep}'; reading them without a row-label column", file=sys.stderr)
            frame = pd.read_csv(path, sep=sep, index_col=False, dtype=ids,
                                decimal=decimal)
    except pd.errors.EmptyDataError:
        raise UsageError(f"--data: {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        # pandas messages can span lines; the first one says what went wrong
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--data: could not parse {path} as CSV: {first}") from None
    except OSError as exc:  # e.g. no read permission
        raise UsageError(f"--data: cannot read {path}: {exc.strerror or exc}") from None
    frame.columns = [str(c) for c in frame.columns]
    unnamed = frame.columns[0] if frame.columns[0].startswith("Unnamed: 0") else None
    if index_col is not None:
        _check_columns(frame, [index_col], "--index-col")
        frame = frame.set_index(index_col)
        repeated = int(frame.index.duplicated(keep=False).sum())
        if repeated:  # the effects file's ids would not identify its rows
            print(f"{PROG}: warning: --index-col {index_col} repeats values ({repeated} "
                  f"rows share an id with another row): the effects written under them "
                  f"cannot be joined back by id alone", file=sys.stderr)
    if unnamed is not None and unnamed != index_col:
        # pandas writes its index as a first column with an empty header
        # (df.to_csv(path)); it numbers rows, it is not a covariate
        if index_col is None:
            use = ("labels the rows and is not a covariate; pass --index-col COL to "
                   "label them by another column")
            frame = frame.set_index(unnamed)
            frame.index.name = None
        else:
            use = "is not a covariate and is left out"
            frame = frame.drop(columns=unnamed)
        print(f"{PROG}: note: the first column of {shown} has no name (a saved pandas "
              f"index?): it {use}", file=sys.stderr)
    if len(frame) == 0:
        raise UsageError(f"--data: {path} has a header but no data rows")
    if len(frame.columns) == 1 and sep == ",":
        raise UsageError(f"--data: {path} has a single column {frame.columns[0]!r}; if "
                         "its fields are separated by something other than a comma, "
                         "pass --sep (e.g. --sep ';')")
    return frame


def _refuse_repeated_names(path, sep):
    """Refuse a header that names a column twice; return the header's fields.

    pandas renames the second ``y`` to ``y.1``, which would then be taken as a
    covariate: a copy of the outcome (or treatment) among the covariates gives a
    silently wrong effect. The raw header is read as text, before pandas renames."""
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str,
                         keep_default_na=False).iloc[0]
    names = [name for name in header if name != ""]   # empty names: pandas numbers them
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        shown = ", ".join(f"{name!r} ({names.count(name)} times)" for name in repeated)
        raise UsageError(f"--data: the header of {path} names {shown}; give each column "
                         "its own name")
    return header


def _last_fields_empty(path, sep, width):
    """Whether every data row's field after the header's last is empty text or absent:
    rows ending with a delimiter (some or all of them). "NA", "nan" and the like are
    values (R writes NA for a missing value in a real last column), not an empty
    field."""
    raw = pd.read_csv(path, sep=sep, header=None, skiprows=1, dtype=str,
                      keep_default_na=False, usecols=[width])
    return bool((raw.iloc[:, 0].fillna("") == "").all())


def _first_row_width(path, sep):
    """The number of fields on the first data line (0 when there is none). One more
    than the header has is how pandas decides that the first field labels the row."""
    try:
        first = pd.read_csv(path, sep=sep, header=None, skiprows=1, nrows=1, dtype=str,
                            keep_default_na=False)
    except pd.errors.EmptyDataError:
        return 0
    return first.shape[1]


def _check_columns(frame, names, option):
    unknown = [name for name in names if name not in frame.columns]
    if unknown:
        shown = ", ".join(map(repr, unknown))
        available = ", ".join(map(repr, frame.columns))
        word = "column" if len(unknown) == 1 else "columns"
        raise UsageError(f"{option}: unknown {word} {shown}; available columns: {available}")


def _refuse_bad_values(counts, what, remedy):
    """Raise naming each column with ``counts`` > 0 bad values (``what``) and its rows."""
    counts = counts[counts > 0]
    if len(counts):
        listed = ", ".join(f"{col!r} ({n} row{'s' if n > 1 else ''})"
                           for col, n in counts.items())
        raise UsageError(f"{what} in {listed}; {remedy}")


def _check_no_missing(frame, columns):
    _refuse_bad_values(frame[columns].isna().sum(), "missing values",
                       "causalnn does not impute: drop or impute those rows first")


def _select(frame, args):
    """Split ``frame`` into covariates, treatment and outcome, checking each."""
    _check_columns(frame, [args.treatment], "--treatment")
    _check_columns(frame, [args.outcome], "--outcome")
    if args.treatment == args.outcome:
        raise UsageError(f"--treatment and --outcome are the same column {args.treatment!r}")
    if args.covariates is not None:
        _check_columns(frame, args.covariates, "--covariates")
        clash = [c for c in args.covariates if c in (args.treatment, args.outcome)]
        if clash:
            raise UsageError(f"--covariates must not include the treatment or outcome "
                             f"column: {', '.join(map(repr, clash))}")
        covariates = list(dict.fromkeys(args.covariates))
    else:
        covariates = [c for c in frame.columns if c not in (args.treatment, args.outcome)]
    if not covariates:
        raise UsageError("no covariate columns: the file has only the treatment and "
                         "outcome columns")
    _check_no_missing(frame, [args.treatment, args.outcome] + covariates)

    X = frame[covariates]
    bad = [c for c in covariates if not (pd.api.types.is_numeric_dtype(X[c])
                                         or pd.api.types.is_bool_dtype(X[c]))]
    if bad:
        plural = len(bad) > 1
        pronoun = "them" if plural else "it"
        raise UsageError(
            f"non-numeric covariate column{'s' if plural else ''} "
            f"{', '.join(map(repr, bad))}; "
            + (_decimal_comma_hint(X[bad]) or
               f"encode {pronoun} as numbers (e.g. one-hot) or leave {pronoun} out "
               f"with --covariates"))
    X = X.astype(np.float64)
    # before standardising, which would turn a column holding inf into NaN
    _refuse_bad_values(np.isinf(X).sum(), "infinite values",
                       "remove or replace those rows first")

    t = frame[args.treatment]
    values = pd.unique(t)
    if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t)) or not set(
            np.asarray(values, dtype=object).tolist()) <= {0, 1}:
        shown = sorted(map(str, values))[:10]
        raise UsageError(f"--treatment column {args.treatment!r} must hold 0/1 values; "
                         f"got {', '.join(shown)}{' ...' if len(values) > 10 else ''}")
    t = t.astype(int).to_numpy()

    y = frame[args.outcome]
    if not (pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)):
        hint = _decimal_comma_hint(frame[[args.outcome]])
        raise UsageError(f"--outcome column {args.outcome!r} must be numeric"
                         + (f"; {hint}" if hint else ""))
    _refuse_bad_values(np.isinf(frame[[args.outcome]].astype(np.float64)).sum(),
                       "infinite values", "remove or replace those rows first")
    return X, t, y.astype(np.float64).to_numpy()


def _decimal_comma_hint(columns):
    """A hint when text columns hold numbers written with a decimal comma (1,5): they
    read as text unless --decimal ',' is given. None otherwise."""
    text = columns.astype("string").stack()
    if len(text) and text.str.fullmatch(r"\s*[-+]?\d+,\d*\s*").all():
        return "the values look like numbers with decimal commas (1,5): pass --decimal ','"
    return None


def _binary_columns(X):
    return [c for c in X.columns if X[c].isin((0.0, 1.0)).all()]


def _same_file(a, b):
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def _check_out(path, data, force):
    """Fail before the fit, not after it, when ``--out`` cannot or must not be written:
    it would replace the input, replace a file without ``--force``, or is unwritable."""
    if path is None:
        return
    if data is not None and _same_file(path, data):
        raise UsageError(f"--out {path} is the --data file; choose another output file "
                         "(causalnn never overwrites its input)")
    if path == "" or path.endswith(("/", os.sep)):
        # abspath drops a trailing slash: the check below would pass and the write,
        # after the fit, fail
        raise UsageError(f"--out: {path!r} names no file; give a file name such as "
                         "effects.csv")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--out: folder {folder} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"--out: {path} is a directory")
    if os.path.exists(path) and not force:
        raise UsageError(f"--out: {path} already exists; pass --force to replace it")
    # probe by creating a scratch file next to it: permission bits alone miss read-only
    # file systems, and os.access is always true for root
    try:
        if not _is_stream(path):  # a device is written in place, not beside itself
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".causalnn-probe-"):
                pass
        if os.path.exists(path):
            with open(path, "a"):
                pass
    except OSError as exc:
        raise UsageError(f"--out: cannot write {path}: {exc.strerror or exc}") from None


def _is_stream(path):
    """Whether ``--out`` names a device or pipe rather than a file to replace."""
    # /dev/stdout redirected to a file resolves to that file: a stream by its name
    # (not every file under /dev is one: /dev/shm holds ordinary files)
    return os.path.exists(path) and (
        not os.path.isfile(path)
        or os.path.abspath(path).startswith(("/dev/std", "/dev/fd/", "/proc/self/fd/")))


def _write_effects(effects, path, index_label):
    """Write ``effects`` to ``path`` through a temporary file renamed into place: a
    write that fails or is interrupted (a full disk, Ctrl-C) leaves the file that was
    there (--force) or none, never a truncated one."""
    existed = os.path.exists(path)
    try:
        if _is_stream(path):
            # /dev/stdout, a FIFO, a terminal: nothing to replace atomically (a rename
            # next to it fails, or replaces the file a shell redirected stdout to)
            effects.to_csv(path, index_label=index_label)
        else:
            write_atomically(path, effects.to_csv(index_label=index_label))
    except OSError as exc:
        kept = f" ({path} was left as it was)" if existed else ""
        raise UsageError(f"--out: cannot write {path}: {exc.strerror or exc}{kept}") from None


def _run_csv(args):
    for option in ("treatment", "outcome"):
        if getattr(args, option) is None:
            raise UsageError(f"--data needs --{option} COL (the {option} column)")
    for option in ("treatment", "outcome"):
        if args.index_col is not None and args.index_col == getattr(args, option):
            # the id column leaves the table before the others are looked up
            raise UsageError(f"--index-col and --{option} name the same column "
                             f"{args.index_col!r}; the ids cannot also be the {option}")
    if args.index_col is not None and args.index_col in (args.covariates or ()):
        raise UsageError(f"--index-col {args.index_col!r} is also in --covariates; the "
                         f"ids are copied to the output, not used as a covariate")
    if args.index_col == "effect" and args.out is not None:
        # the output's columns are the id column and 'effect': two columns of one name
        # read back as 'effect' (the ids) and 'effect.1' (the effects)
        raise UsageError("--index-col effect: the effects file has a column 'effect' "
                         "of its own; rename that id column of --data")
    decimal = _separator(args.decimal, "--decimal")
    if decimal == _separator(args.sep):
        raise UsageError(f"--decimal {args.decimal!r} is also the field separator "
                         f"(--sep); a file with decimal commas is usually --sep ';'")
    frame = _read_csv(args.data, args.index_col, _separator(args.sep), decimal)
    X, t, y = _select(frame, args)
    n_binary = len(_binary_columns(X))
    X = X.to_numpy(dtype=np.float64)
    estimator = _make_estimator(args)
    elapsed = _fit(estimator, X, y, t)
    effects = pd.DataFrame({"effect": estimator.effect(X)}, index=frame.index)
    index_label = args.index_col or "row"
    if args.out is not None:  # before anything is printed: see main's BrokenPipeError
        _write_effects(effects, args.out, index_label)

    name = type(estimator).__name__
    n_treated = int(t.sum())
    scaled = ""
    if not args.no_scale:
        kept = (f"; {n_binary} 0/1 column{'s' if n_binary > 1 else ''} left as "
                f"{'they are' if n_binary > 1 else 'it is'}") if n_binary else ""
        scaled = f" (standardised{kept})"
    print(f"{name} on {args.data}: {len(frame)} rows ({n_treated} treated, "
          f"{len(frame) - n_treated} control), {X.shape[1]} covariates{scaled}")
    kind = estimator.outcome_type_
    if kind == "binary":
        kind += ": effects are differences of probabilities"
    print(f"treatment {args.treatment!r}, outcome {args.outcome!r} ({kind})")
    print()
    tau = effects["effect"].to_numpy()
    q05, q50, q95 = np.quantile(tau, [0.05, 0.5, 0.95])
    _print_table([
        ("estimated ATE", _fmt(estimator.ate(X))),
        ("effect per row:  5%", _fmt(q05)),
        ("                 50%", _fmt(q50)),
        ("                 95%", _fmt(q95)),
    ])
    _print_average_effect(estimator, X, y, t, args, "rows of --data")
    print()
    _print_table([("device", _device_name(estimator)),
                  ("fit time", _fit_summary(estimator, elapsed))], numeric=False)
    if args.out is not None:
        print(f"\nwrote {len(effects)} effects to {args.out}")
    else:
        print(f"\nfirst {min(N_PREVIEW, len(effects))} of {len(effects)} effects "
              f"(pass --out FILE.csv to save all):")
        preview = effects.head(N_PREVIEW).rename_axis(index_label).reset_index()
        print(preview.to_string(index=False, float_format=_fmt))
    return 0


def _separator(text, option="--sep"):
    if text in ("\\t", "tab", "\t"):
        return "\t"
    if len(text) != 1:
        raise UsageError(f"{option}: expected one character (or '\\t' for tab), got "
                         f"{text!r}")
    return text


def _refuse_ignored_options(args):
    """Refuse options given where they would have no effect (the AIPW options with
    --no-inference, --force without --out): a user who asked for the ATT must not get
    a run without it and no word."""
    if args.force and args.out is None:
        raise UsageError("--force replaces an existing --out file; without --out "
                         "nothing is written: pass --out FILE.csv or drop --force")
    given = [f"--{name.replace('_', '-')}" for name in INFERENCE_DEFAULTS
             if getattr(args, name) is not None]
    if args.no_inference and given:
        one = len(given) == 1
        raise UsageError(f"{', '.join(given)} appl{'ies' if one else 'y'} to the AIPW "
                         "estimate, which --no-inference skips: drop "
                         f"{'it' if one else 'them'} or --no-inference")


def _run_estimate(args):
    _refuse_ignored_options(args)
    for name, default in INFERENCE_DEFAULTS.items():   # the options left out
        if getattr(args, name) is None:
            setattr(args, name, default)
    _check_out(args.out, args.data, args.force)
    if args.cv < 2:  # before the fit, like every other refusal
        raise UsageError(f"--cv must be at least 2; got {args.cv}")
    if args.data is None:
        given = [f"--{name.replace('_', '-')}" for name in
                 ("treatment", "outcome", "covariates", "index_col")
                 if getattr(args, name) is not None]
        if args.no_scale:
            given.append("--no-scale")
        if args.sep != ",":
            given.append("--sep")
        if args.decimal != ".":
            given.append("--decimal")
        if given:
            raise UsageError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} "
                             "--data FILE.csv")
        return _run_ihdp(args)
    return _run_csv(args)


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv=None):
    """Run the ``causalnn`` command.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``None`` reads ``sys.argv[1:]``.

    Returns
    -------
    code : int
        Exit status: 0 on success, 2 for bad arguments or input data (reported as one
        ``causalnn: error:`` line on stderr), 1 when training diverged, 130 when
        interrupted (Ctrl-C; a ``bench`` run keeps what finished, for ``--resume``).
    """
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version exit from inside argparse
            return exc.code if isinstance(exc.code, int) else 0
        if args.command is None:
            raise UsageError(f"missing command: choose from 'estimate', 'bench' "
                             f"(see '{PROG} --help')")
        if args.command == "bench":
            return run_bench(args, argv)
        return _run_estimate(args)
    except UsageError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # stdout closed early (`causalnn ... | head`): not an input error. Point stdout
        # at /dev/null so that the interpreter's final flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a process killed by it
    except (ValueError, TypeError, OSError) as exc:
        # the library's input checks name the argument and what is wrong with it; an
        # OSError (a file that cannot be read or written) names the file
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDivergedError as exc:
        print(f"{PROG}: error: {_one_line(exc)} (CLI option: --learning-rate)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
