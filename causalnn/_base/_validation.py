"""Checks of the data handed to ``fit``/``predict``: one place for every estimator.

Each error names the argument that was wrong and what was wrong with it, so a user never
meets a torch stack trace for bad input.
"""
import numbers

import numpy as np
import pandas as pd
import scipy.sparse
from sklearn.exceptions import DataConversionWarning

from .._warnings import shared_filter, warn_at_caller

__all__ = [
    "as_pandas_frame",
    "require_treatment",
    "split_treatment_column",
    "check_features",
    "check_vector",
    "check_binary",
    "check_same_index",
    "check_device_type",
    "check_cause_matrix",
]


def _is_frame(X):
    return isinstance(X, pd.DataFrame)


def _is_other_frame(X):
    """A DataFrame of another library: polars (what sklearn's
    ``set_output(transform="polars")`` hands on), pyarrow, or any object with the
    dataframe interchange protocol or named columns."""
    if isinstance(X, (pd.DataFrame, pd.Series, np.ndarray)) or scipy.sparse.issparse(X):
        return False
    return hasattr(X, "__dataframe__") or (
        hasattr(X, "columns") and (hasattr(X, "to_pandas") or hasattr(X, "to_numpy")))


def _column_labels(X):
    """``X.columns`` as a list when it holds column labels (strings or integers), else
    None (pyarrow's ``Table.columns`` holds the columns themselves)."""
    try:
        labels = list(X.columns)
    except TypeError:
        return None
    if all(isinstance(c, (str, numbers.Integral)) for c in labels):
        return labels
    return None


def _tensor_as_array(v):
    """A torch tensor as a NumPy array of its values, taken without autograd history and
    from the CPU (NumPy's conversion of a tensor that requires grad raises torch's
    RuntimeError, of a CUDA tensor a TypeError that names neither the argument nor the
    remedy); bfloat16, which NumPy lacks, as float32 (exactly: every bfloat16 value is
    a float32 one). Any other input as it is."""
    if type(v).__module__.split(".")[0] == "torch" and callable(getattr(v, "detach", None)):
        v = v.detach().cpu()
        return (v.float() if str(v.dtype) == "torch.bfloat16" else v).numpy()
    return v


def _real_numeric(dtype):
    """Whether a pandas column of ``dtype`` holds real numbers (bool included), which
    convert to float64 with ``pd.NA`` as NaN."""
    return ((pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
            and not pd.api.types.is_complex_dtype(dtype))


def as_pandas_frame(X):
    """``X`` as a pandas DataFrame when it is a DataFrame of another library; any other
    input is returned as it is.

    The checks of this module then record and match its column names as for pandas
    (``feature_names_in_``, columns re-ordered by name at predict, ``treatment_col``)
    and refuse its non-numeric columns with the same message. Pandas is the only
    frame library causalnn depends on, so the conversion asks nothing of the other
    library beyond its own API: column by column with ``to_numpy`` (polars without
    pyarrow), else its ``to_pandas``, else the dataframe interchange protocol.

    A frame without an index of its own (polars) gets pandas' default ``RangeIndex``:
    its rows are labelled 0..n-1, so pandas inputs given beside it are checked against
    that index by :func:`check_same_index`, as against such a pandas ``X``.
    """
    X = _tensor_as_array(X)
    if not _is_other_frame(X):
        return X
    labels = _column_labels(X) if hasattr(X, "columns") else None
    if labels is not None:
        try:
            columns = [X[c] for c in labels]
        except (KeyError, IndexError, TypeError):
            columns = None
        if columns is not None:
            values = {}
            for i, column in enumerate(columns):
                array = np.asarray(column.to_numpy() if hasattr(column, "to_numpy")
                                   else column)
                # a column of lists or arrays: one object per row, refused as non-numeric
                values[i] = array if array.ndim == 1 else pd.Series(list(array),
                                                                    dtype=object)
            frame = (pd.DataFrame(values) if values else
                     pd.DataFrame(index=pd.RangeIndex(np.shape(X)[0])))
            frame.columns = labels  # after construction: keeps duplicates to refuse them
            return frame
    if callable(getattr(X, "to_pandas", None)):
        try:
            frame = X.to_pandas()
        except ImportError:  # e.g. a library whose to_pandas needs pyarrow
            frame = None
        if isinstance(frame, pd.DataFrame):
            return frame
    if hasattr(X, "__dataframe__"):
        # pandas >= 3 deprecates the protocol: our choice of path, not the user's. Only
        # that warning is filtered, and not by catch_warnings: predicts overlapping in
        # threads restored each other's saved filters and left every warning of the
        # process silenced, and warnings of other threads were lost meanwhile
        with shared_filter(message="The Dataframe Interchange Protocol is deprecated",
                           category=DeprecationWarning):
            return pd.api.interchange.from_dataframe(X)
    return X


def split_treatment_column(X, treatment, treatment_col, *, required=True,
                           call="fit(X, y, treatment=t)"):
    """Return ``(X_without_treatment, treatment)``.

    The treatment comes either as the ``treatment`` argument or, when ``treatment_col``
    is set, as that column of the DataFrame ``X`` (then it is dropped from ``X``).
    ``call`` is the call the missing-treatment error suggests. A DataFrame of another
    library is returned as a pandas one (:func:`as_pandas_frame`).
    """
    X = as_pandas_frame(X)
    if isinstance(treatment, str):
        raise ValueError(
            f"treatment={treatment!r} is a string; to take the treatment from a column "
            f"of X, set the estimator's treatment_col={treatment!r} (or pass "
            f"treatment=X[{treatment!r}]).")
    if treatment_col is None:
        if required:
            require_treatment(treatment, call=call)
        return X, treatment
    if not _is_frame(X):
        raise TypeError(
            f"treatment_col={treatment_col!r} needs X to be a pandas DataFrame; "
            f"got {type(X).__name__}."
        )
    if treatment_col not in X.columns:
        if treatment is None and required:
            require_treatment(None, treatment_col, X.columns, call=call)
        return X, treatment
    if treatment is not None:
        raise ValueError(
            f"treatment was given twice: as the treatment argument and as column "
            f"{treatment_col!r} of X (treatment_col). Pass only one."
        )
    column = X[treatment_col]
    # a nullable column's pd.NA as NaN: reported as a missing value, not as text
    values = (column.to_numpy(dtype=np.float64, na_value=np.nan)
              if _real_numeric(column.dtype) else column.to_numpy())
    return X.drop(columns=[treatment_col]), values


def require_treatment(treatment, treatment_col=None, columns=None, *,
                      call="fit(X, y, treatment=t)", column_option=True):
    """Raise the error that explains every way to pass a treatment when it is missing.

    With ``treatment_col`` set (and the column absent from ``columns``) the error says
    that the column was not found, since that is the likely slip. ``call`` is the
    call to suggest (the method that was missing it). ``column_option=False``: the
    estimator has no ``treatment_col`` (the Deconfounder); the error does not offer it.
    """
    if treatment is None and treatment_col is not None:
        raise ValueError(
            f"treatment_col={treatment_col!r} is not a column of X "
            f"(columns: {[str(c) for c in columns][:10]}"
            f"{'...' if columns is not None and len(columns) > 10 else ''}) and no "
            f"treatment argument was passed."
        )
    if treatment is None:
        routing = ("(Inside cross_validate/GridSearchCV, enable metadata routing with "
                   "sklearn.set_config(enable_metadata_routing=True) and pass "
                   "params={'treatment': t}.)" if call.startswith(("fit", "score")) else "")
        column = (", or set the estimator's treatment_col to the name of the DataFrame "
                  "column that holds it" if column_option else "")
        raise ValueError(
            f"treatment is required: pass {call}{column}. {routing}".rstrip())


def check_features(X, *, name="X", feature_names=None, n_features=None, owner="estimator",
                   allow_no_columns=False, keep_float32=False):
    """Validate a feature matrix and return ``(array float64 (n, d), column names or None)``.

    At predict time ``feature_names``/``n_features`` are the ones seen in ``fit``: a
    DataFrame must carry exactly those columns (in any order: they are re-ordered), an
    array the same number of columns. Other libraries' DataFrames are taken as their
    pandas conversion (:func:`as_pandas_frame`). Dates and durations are refused, in
    a DataFrame column as in an array: their numeric value depends on the unit of
    their dtype. Any array-like is converted before it is inspected (NumPy functions
    are not called on the raw input, whose ``__array_function__`` may refuse them).

    ``allow_no_columns=True`` accepts an ``(n, 0)`` matrix, for an estimator whose
    covariates are optional (the Deconfounder): it is how "no covariates" passes
    through scikit-learn's cross-validation tools, which cannot split ``None``. Its
    column names are then None, as scikit-learn records none for a frame without
    columns.

    ``keep_float32=True`` returns a float32 NumPy array as it is (in any memory order),
    and a DataFrame of NumPy float32 columns as a float32 array, instead of a float64
    copy, for a caller that scales it next into an array of its own (the estimators'
    features): :func:`~causalnn._base._scaling.column_scaling` and
    :func:`~causalnn._base._scaling.apply_scaling` then give the values, to the bit,
    that they give on the float64 copy, without holding that copy.
    """
    names = None
    if callable(getattr(X, "collect", None)) and not hasattr(X, "to_numpy"):
        # e.g. a polars LazyFrame: a query plan, not data
        raise TypeError(f"{name} is a lazy frame ({type(X).__name__}); pass its data, "
                        f"e.g. {name}.collect().")
    X = as_pandas_frame(X)
    if scipy.sparse.issparse(X):
        raise TypeError(
            f"{name} is a sparse matrix; sparse input is not supported: pass a dense "
            f"array (e.g. {name}.toarray()).")
    if _is_frame(X):
        _refuse_complex(X.dtypes, name)
        names = np.asarray([str(c) for c in X.columns], dtype=object)
        unique, counts = np.unique(names, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(
                f"{name} has duplicate column names {unique[counts > 1].tolist()}; "
                f"rename them so that every column can be found by name at predict.")
        if feature_names is not None:
            known, given = set(feature_names), set(names)
            unknown = [c for c in names if c not in known]
            missing = [c for c in feature_names if c not in given]
            if unknown or missing:
                raise ValueError(
                    f"{name} has different columns than at fit: "
                    f"unknown columns {unknown}, missing columns {missing}."
                )
            # re-ordered by position: no copy when the order is fit's, one otherwise
            position = {c: i for i, c in enumerate(names)}
            order = [position[c] for c in feature_names]
            if order != list(range(len(order))):
                X = X.iloc[:, order]
            names = np.asarray(feature_names, dtype=object)
        bad = [str(c) for c, dt in X.dtypes.items()
               if not (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt))]
        if bad:
            kinds = sorted({str(dt) for c, dt in X.dtypes.items() if str(c) in bad})
            stored = any(dt == object or isinstance(dt, pd.CategoricalDtype)
                         for c, dt in X.dtypes.items() if str(c) in bad)
            hint = (" Numbers stored as object or category are not converted silently: "
                    f"convert them yourself (e.g. pd.to_numeric({name}[col])); encode "
                    "categories (e.g. pd.get_dummies)." if stored else "")
            raise TypeError(f"{name} columns must be numeric; non-numeric columns: {bad} "
                            f"(dtypes {', '.join(kinds)}).{hint}")
        if keep_float32 and len(X.columns) and all(
                isinstance(dt, np.dtype) and dt == np.float32 for dt in X.dtypes):
            array = X.to_numpy(dtype=np.float32)  # NumPy float32 columns: no NA to map
        else:
            array = X.to_numpy(dtype=np.float64, na_value=np.nan)
    elif keep_float32 and type(X) is np.ndarray and X.dtype == np.float32:
        array = X
    else:
        _refuse_dates(X, name)
        _refuse_masked_or_text(X, name)
        try:
            # complexness read from a plain conversion; the float64 one is of the
            # original input, so that its errors name the input's own values
            plain_dtype = np.asarray(X).dtype
            if plain_dtype.kind != "c":
                array = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a numeric array-like; {exc}") from None
        _refuse_complex([plain_dtype], name)
    if array.ndim == 1:
        raise ValueError(
            f"{name} must be 2-dimensional (n_samples, n_features); got a 1-d array of "
            f"shape {array.shape}. Reshape your data with X.reshape(-1, 1) for one "
            f"feature or X.reshape(1, -1) for one sample."
        )
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional; got shape {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no rows.")
    if array.shape[1] == 0:
        if not allow_no_columns:
            raise ValueError(f"{name} has no columns.")
        names = None
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(
            f"{name} has {array.shape[1]} features, but {owner} is expecting "
            f"{n_features} features as input (the number seen in fit)."
        )
    if n_features is not None and (feature_names is None) != (names is None):
        # at predict: columns are then matched by position alone, as sklearn warns
        warn_at_caller(
            f"{name} has feature names, but {owner} was fitted without feature names"
            if names is not None else
            f"{name} does not have valid feature names, but {owner} was fitted with "
            f"feature names; its columns are taken in the order seen in fit")
    _check_finite(array, name)
    # pandas' copy-on-write hands out read-only views, kept as they are: no estimator
    # writes into its checked X (a float64 NumPy X arrives as the user's own array), and
    # a copy would cost one more float64 table at fit and at every prediction
    return array, names


def _refuse_complex(dtypes, name):
    """Refuse complex values, given the dtypes of converted data (a frame's columns, or
    an array's): NumPy's ``iscomplexobj`` on the raw input would call the input's
    ``__array_function__``, which an array-like may implement restrictively."""
    if any(getattr(dtype, "kind", None) == "c" for dtype in dtypes):
        raise ValueError(f"{name} holds complex numbers: Complex data not supported.")


def _check_finite(array, name):
    if not np.all(np.isfinite(array)):
        n_nan = int(np.isnan(array).sum())
        n_inf = int(np.isinf(array).sum())
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite values; causalnn does "
            f"not impute: remove or impute them first (e.g. sklearn SimpleImputer)."
        )


def _refuse_dates(v, name):
    """Refuse dates and durations (numpy ``datetime64``/``timedelta64``, pandas
    datetime, timedelta and period data): as numbers they would count days or
    nanoseconds according to their dtype's resolution, and effects would come out in
    that unit, unannounced."""
    if isinstance(v, pd.DataFrame):
        dtypes = list(v.dtypes)
    else:
        dtype = getattr(v, "dtype", None)
        if not isinstance(dtype, (np.dtype, pd.api.extensions.ExtensionDtype)):
            # lists, and other libraries' Series (their dtypes are not numpy's)
            try:
                dtype = np.asarray(v).dtype
            except (TypeError, ValueError):
                return
        dtypes = [dtype]
    for dtype in dtypes:
        if getattr(dtype, "kind", None) == "m":
            raise TypeError(
                f"{name} must be numeric; got durations (dtype {dtype}). Convert them "
                f"to numbers in a unit you choose, e.g. days: "
                f"{name} / np.timedelta64(1, 'D').")
        if getattr(dtype, "kind", None) == "M" or isinstance(dtype, pd.PeriodDtype):
            raise TypeError(
                f"{name} must be numeric; got dates (dtype {dtype}). Convert them to "
                f"numbers in a unit you choose, e.g. days since a reference date: "
                f"({name} - reference) / np.timedelta64(1, 'D').")


def _refuse_masked_or_text(v, name):
    """Refuse what a float conversion would read silently: a NumPy masked array with
    masked entries (the conversion drops the mask and uses the hidden values) and
    numbers written as text (``"1.5"`` converts, ``"1,5"`` does not: a column's
    meaning would hang on its formatting). Text that is no number is left to the
    conversion's own error, which shows the values."""
    if isinstance(v, np.ma.MaskedArray):
        n_masked = int(np.ma.count_masked(v))
        if n_masked:
            raise ValueError(
                f"{name} is a masked array with {n_masked} masked entries; converting "
                f"it would use the values under the mask. Mark them as missing "
                f"({name}.filled(np.nan), then impute or drop them), or pass "
                f"{name}.data if they are valid.")
        v = v.data  # nothing masked: its data, which may still be text
    try:
        array = v if isinstance(v, np.ndarray) else np.asarray(v)
    except (TypeError, ValueError):
        return  # the conversion that follows names the problem
    if array.dtype.kind in "US" or (
            array.dtype.kind == "O"
            and any(isinstance(x, (str, bytes)) for x in array.ravel())):
        try:
            array.astype(np.float64)
        except (TypeError, ValueError):
            return  # words, not numbers: the conversion that follows shows them
        raise TypeError(
            f"{name} holds text; causalnn does not convert strings to numbers "
            f"silently: convert them yourself (e.g. {name}.astype(float), or "
            f"pd.to_numeric for a column) after checking their format.")


def _as_float64(v, name):
    """``v`` (array-like, pandas or another library's Series/DataFrame, nested lists)
    as a float64 array; complex, non-numeric, date or duration values are refused,
    with the values shown."""
    v = as_pandas_frame(v)
    if scipy.sparse.issparse(v):
        raise TypeError(f"{name} is a sparse matrix; sparse input is not supported: pass "
                        f"a dense array (e.g. {name}.toarray()).")
    _refuse_dates(v, name)
    if isinstance(v, (pd.Series, pd.DataFrame)):
        dtypes = [v.dtype] if isinstance(v, pd.Series) else list(v.dtypes)
        # nullable columns (boolean, Int64, Float64): pd.NA read as NaN, so that the
        # missing value is reported as one, not as a non-numeric value
        v = (v.to_numpy(dtype=np.float64, na_value=np.nan)
             if all(map(_real_numeric, dtypes)) else v.to_numpy())
        _refuse_dates(v, name)  # e.g. a categorical of dates hands out datetime64
    _refuse_masked_or_text(v, name)
    try:
        # complexness is read from a conversion, not from the raw input
        array = np.asarray(v)
        if array.dtype.kind != "c":
            return np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        try:
            shown = pd.unique(np.ravel(np.asarray(v, dtype=object)))
            more = "..." if len(shown) > 10 else ""
            detail = f" with values {[str(x) for x in shown[:10]]}{more}"
        except (TypeError, ValueError):
            detail = ""
        raise TypeError(
            f"{name} must be numeric (encode categories as numbers, e.g. 0/1 for a "
            f"treatment); got {type(v).__name__}{detail}.") from None
    _refuse_complex([array.dtype], name)


def check_vector(v, *, name, n_samples=None, warn_column=False):
    """Return a finite 1-d float64 array.

    A column vector (n, 1) is accepted and flattened; with ``warn_column`` (for ``y``,
    as sklearn does) a ``DataConversionWarning`` says so.
    """
    if v is None:
        raise ValueError(f"{name} is required: the estimator requires {name} to be "
                         f"passed, but the target {name} is None.")
    array = _as_float64(v, name)
    if array.ndim == 2 and array.shape[1] == 1:
        if warn_column:
            warn_at_caller(f"A column-vector {name} was passed when a 1d array was "
                           f"expected; it is flattened to shape ({array.shape[0]},).",
                           DataConversionWarning)
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional; got shape {array.shape}.")
    if n_samples is not None and array.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {array.shape[0]} rows but X has {n_samples}: the lengths must match."
        )
    _check_finite(array, name)
    return array


def check_binary(v, *, name, owner):
    """Check that ``v`` only holds 0 and 1 and return it as float64."""
    values = np.unique(v)
    if not np.all(np.isin(values, (0.0, 1.0))):
        shown = values[:10].tolist()
        raise ValueError(
            f"{name} must be binary (0/1) for {owner}; got values {shown}"
            f"{'...' if len(values) > 10 else ''}."
        )
    return v


def check_scalar_or_vector(v, *, name, n_samples):
    """Treatment levels for ``effect``/``predict_outcome``: a scalar (a number, a bool,
    a numpy scalar or a 0-d array), applied to every row, or an (n,) array."""
    if isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must be a number or an array of numbers; got {v!r}.")
    v = _tensor_as_array(v)
    if isinstance(v, (numbers.Number, np.generic)) or (
            isinstance(v, np.ndarray) and v.ndim == 0):
        _refuse_dates(v, name)  # a np.datetime64 / np.timedelta64 scalar
        try:
            value = float(v)
        except (TypeError, ValueError):
            value = None
        if value is None or isinstance(v, (complex, np.complexfloating)):
            raise TypeError(f"{name} must be a number or an array of numbers; got {v!r}.")
        v = np.full(n_samples, value)
    return check_vector(v, name=name, n_samples=n_samples)


def check_same_index(v, X, name, reference="X"):
    """Refuse a pandas ``v`` whose index differs from that of the DataFrame ``X``
    (``reference``: what the message calls ``X``).

    sklearn matches rows by position and ignores the index; a Series that was sorted or
    filtered separately would then pair each row with another row's value, silently.
    Raising (rather than aligning) keeps the positional contract of every other input
    and says exactly what to do. Another library's DataFrame ``X`` is compared by its
    pandas conversion's index (:func:`as_pandas_frame`: 0..n-1 for polars).
    """
    if not isinstance(v, (pd.Series, pd.DataFrame)):
        return
    X = as_pandas_frame(X)
    if not _is_frame(X):
        return
    if v.index.equals(X.index):
        return
    if len(v.index) == len(X.index) and set(v.index) == set(X.index):
        how = f"has the same labels as {reference}.index in another order"
    else:
        how = f"has labels that differ from {reference}.index"
    raise ValueError(
        f"{name} is a pandas {type(v).__name__} whose index {how}; rows are matched by "
        f"position, so this would pair rows with the wrong {name}. Pass "
        f"{name}.reindex({reference}.index) to align by label, or {name}.to_numpy() if "
        f"the order is already right.")


def check_same_rows(pairs, X, reference=None, reference_name=None):
    """:func:`check_same_index` for each ``(value, argument name)`` in ``pairs``, against
    ``X`` when it is a DataFrame, else against the pandas ``reference`` (e.g. a cause
    matrix, when an estimator's ``X`` may be None), called ``reference_name``.

    Without either (a numpy ``X``, no ``reference``), the pandas values among ``pairs``
    are compared with the first of them: a ``y`` Series and a treatment Series sorted
    apart would otherwise be paired by position, with nothing to compare them with.
    """
    if _is_frame(as_pandas_frame(X)):
        for value, name in pairs:
            check_same_index(value, X, name)
        return
    if not isinstance(reference, (pd.Series, pd.DataFrame)):
        labelled = [(v, n) for v, n in pairs if isinstance(v, (pd.Series, pd.DataFrame))]
        if not labelled:
            return
        reference, reference_name = labelled[0]
    if isinstance(reference, pd.Series):
        reference = reference.to_frame()
    for value, name in pairs:
        if value is not reference:
            check_same_index(value, reference, name, reference=reference_name)


def check_device_type(device, owner):
    """causalnn runs on the CPU or CUDA; refuse other torch device types up front."""
    if device.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device={str(device)!r} is not supported by {owner}: use 'auto', 'cpu' or "
            f"'cuda' (optionally 'cuda:N').")


def _ndim(v):
    """``v``'s number of dimensions, read from its conversion to an array (``np.ndim``
    would call the input's ``__array_function__``); None when it does not convert."""
    if isinstance(v, np.ndarray):
        return v.ndim
    try:
        return np.asarray(v).ndim
    except (TypeError, ValueError):
        return None


def check_cause_matrix(A, *, n_samples=None, n_causes=None, cause_names=None,
                       owner="estimator", fit=False, call="fit(X, y, treatment=A)"):
    """Validate an (n_samples, n_causes) matrix of causes (the deconfounder's treatment).

    Returns ``(array float64 (n, m), column names or None)``. At fit (``fit=True``) a
    constant column is an error: a cause that never varies has no estimable effect and
    no information for the factor model.
    """
    if A is None:
        require_treatment(A, call=call, column_option=False)
    A = as_pandas_frame(A)
    if not _is_frame(A) and not scipy.sparse.issparse(A) and _ndim(A) == 1:
        raise ValueError(
            f"treatment must be a 2-d matrix of causes (n_samples, n_causes) for {owner}; "
            f"got a 1-d array of shape {np.asarray(A).shape}. For one binary treatment "
            f"use a single-treatment estimator (TARNet, CFRNet, Dragonnet).")
    A, names = check_features(A, name="treatment", feature_names=cause_names,
                              n_features=n_causes, owner=owner)
    if n_samples is not None and A.shape[0] != n_samples:
        raise ValueError(f"treatment has {A.shape[0]} rows but X has {n_samples}: the "
                         f"lengths must match.")
    if fit:
        constant = np.flatnonzero(np.ptp(A, axis=0) == 0)
        if constant.size:
            shown = [str(names[j]) if names is not None else int(j) for j in constant[:10]]
            raise ValueError(
                f"treatment has {constant.size} constant cause column(s) {shown}: a cause "
                f"that never varies has no estimable effect; drop it before fitting "
                f"{owner}.")
    return A, names
# ---- continuous / vector treatments and instruments (instrumental-variable estimators) ----

def column_list(columns):
    """A column name or a sequence of names as a list."""
    return [columns] if isinstance(columns, (str, numbers.Integral)) else list(columns)


def split_named_columns(X, values, columns, *, name, param):
    """Return ``(X_without_columns, values)`` where ``values`` may come from ``columns``.

    The counterpart of :func:`split_treatment_column` for a block of columns (e.g. the
    instruments named by ``instrument_cols``): given both as an argument and as columns
    is an error, as is a column missing from the DataFrame. Frames of another library
    (``X`` or ``values``) are returned as pandas ones (:func:`as_pandas_frame`), so
    that the columns of ``values`` can be matched by name later.
    """
    X, values = as_pandas_frame(X), as_pandas_frame(values)
    if columns is None:
        return X, values
    columns = column_list(columns)
    if not _is_frame(X):
        raise TypeError(f"{param}={columns!r} needs X to be a pandas DataFrame; got "
                        f"{type(X).__name__}.")
    missing = [c for c in columns if c not in X.columns]
    if missing:
        if values is not None:
            return X, values
        raise ValueError(f"{param}: columns {missing} are not columns of X "
                         f"(columns: {list(map(str, X.columns))[:10]}...).")
    if values is not None:
        raise ValueError(f"{name} was given twice: as the {name} argument and as columns "
                         f"{columns} of X ({param}). Pass only one.")
    return X.drop(columns=columns), X[columns]  # a DataFrame: its names travel with it


def check_matrix(v, *, name, n_samples, against="X"):
    """Return a finite float64 array of shape (n_samples, k); a 1-d input is one column.

    For data that may have one or several columns: a continuous or vector treatment, the
    instruments.
    """
    if v is None:
        raise ValueError(f"{name} is required.")
    if scipy.sparse.issparse(v):
        raise TypeError(f"{name} is a sparse matrix; pass a dense array.")
    array = _as_float64(v, name)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{name} must be of shape (n_samples,) or (n_samples, k); got "
                         f"shape {array.shape}.")
    if array.shape[0] != n_samples:
        raise ValueError(f"{name} has {array.shape[0]} rows but {against} has {n_samples}: "
                         f"the lengths must match.")
    _check_finite(array, name)
    return array.copy() if not array.flags.writeable else array


def check_varies(array, *, name):
    """Raise when a column of the (n, k) ``array`` is constant: it carries no variation."""
    constant = np.flatnonzero(np.ptp(array, axis=0) == 0)
    if len(constant):
        raise ValueError(f"{name} is constant (no variation) in column(s) "
                         f"{constant.tolist()}; a constant {name} carries no information.")
