"""Standardisation of features and outcomes, shared by every estimator.

Networks are initialised for unit-scale inputs and train on a unit-scale outcome, while
users pass raw columns (a year, incomes in dollars, a constant). Two cases need care
beyond ``mean`` and ``std``:

- a column that is constant in the training data: its ``std`` is 0, or a round-off
  residue near 1e-17 when the mean is not exact in float64 (0.1, 0.3), which would turn
  any other value at prediction into an input near 1e16. Such a column is centred on
  its value with scale 1.
- values so large or so small that ``mean`` overflows or the squares in ``std``
  over- or underflow: the scale is then computed on the column divided by its largest
  deviation, which is exact in meaning and finite whenever the data are.
"""
import numpy as np

__all__ = ["NETWORK_INPUT_LIMIT", "all_rows", "apply_scaling", "column_scaling",
           "standardize_outcome"]


def _centre_and_scale(deviation):
    """Mean and root mean square about it, along axis 0, of ``deviation`` (the data
    minus one of its rows), without over- or underflow: columns whose plain mean or
    squares leave the float64 range are recomputed divided by their largest
    deviation. Non-finite where the deviations themselves are not."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        centre = deviation.mean(axis=0)
        scale = np.sqrt(np.mean((deviation - centre) ** 2, axis=0))
        spread = np.max(np.abs(deviation), axis=0)
        bad = (spread > 0) & ~(np.isfinite(centre) & np.isfinite(scale) & (scale > 0))
        if np.any(bad):
            scaled = deviation[:, bad] / spread[bad]
            mean = scaled.mean(axis=0)
            centre[bad] = spread[bad] * mean
            scale[bad] = spread[bad] * np.sqrt(np.mean((scaled - mean) ** 2, axis=0))
    return centre, scale


#: the largest magnitude the networks take: they compute in float32 or bfloat16, whose
#: ranges end near 3.4e38; beyond it an input becomes inf there, and the outputs NaN
NETWORK_INPUT_LIMIT = float(np.finfo(np.float32).max)


#: rows per block hold about this many values (a few hundred kB): block-wise passes
#: keep their temporaries that size instead of the table's
_BLOCK_VALUES = 2**16


def _block_rows(X):
    return max(1, _BLOCK_VALUES // max(int(np.prod(X.shape[1:])), 1))


def _row_blocks(X):
    step = _block_rows(X)
    return ((start, X[start:start + step]) for start in range(0, X.shape[0], step))


def all_rows(X, test):
    """``np.all(test(X), axis=0)`` computed block by block: no boolean copy of the
    table."""
    result = np.all(test(X[:0]), axis=0)  # True, in the shape of test's columns
    for _, block in _row_blocks(X):
        result &= np.all(test(block), axis=0)
    return result


def _mean_and_std(X, pick=lambda block: block):
    """``mean(axis=0)`` and ``std(axis=0)`` of the C-ordered float64 copy of
    ``pick(X)`` (``X``, or some of its columns), to the bit, for ``X`` of any float
    dtype and memory order, without that copy or NumPy's temporary of the deviations
    (the table's size in float64 each).

    Along the rows of a C-ordered table of two or more columns NumPy adds row after row,
    column by column; here each block of rows is converted to C-ordered float64 and
    added after the running sums in that same order (``tests/test_copies_removed.py``
    checks the bits against NumPy). One column is summed pairwise by NumPy, so it is
    left to NumPy: its float64 copy is the size of a vector.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if X.ndim != 2 or pick(X[:1]).shape[1] < 2 or X.shape[0] == 0:
            plain = np.asarray(pick(X), dtype=np.float64)
            return plain.mean(axis=0), plain.std(axis=0)
        n = X.shape[0]

        def column_sums(term):
            total = None
            for _, block in _row_blocks(X):
                values = term(np.ascontiguousarray(pick(block), dtype=np.float64))
                if total is not None:  # the running sums first, as NumPy's first row
                    values = np.concatenate([total[None], values])
                total = np.add.reduce(values, axis=0)
            return total

        def squared_deviations(block):  # a new array: ``block`` may be a view of X
            deviation = block - mean
            return np.square(deviation, out=deviation)

        mean = column_sums(lambda block: block) / n
        variance = column_sums(squared_deviations) / n
    return mean, np.sqrt(variance)


def apply_scaling(X, offset, scale, name="X", dtype=np.float64, out=None):
    """``(X - offset) / scale``, as ``dtype``, in ``out`` when given (an array of ``X``'s
    shape and ``dtype``, e.g. the columns of a wider one, or ``X`` itself: the result is
    written there and ``out`` returned).

    Block by block of rows, each block scaled in float64 and written into the result,
    so no temporary of the table's size is made. In float32 (the networks' precision)
    the values are those of rounding the float64 result.

    Every network input passes through here, so a scaled value the networks cannot
    represent (beyond :data:`NETWORK_INPUT_LIMIT`, e.g. 1e-260 in a column whose
    training standard deviation is 1e-300: a unit mix-up) is refused with an error
    naming ``name``, instead of coming back as NaN effects. The check reads each block's
    extremes while the block is still in the cache. (On an H200 machine, scaling a
    million-row table with a float64 copy and two more passes for the check took two
    thirds of TARNet's ``effect(X)``.)
    """
    if out is not None and (out.shape != X.shape or out.dtype != np.dtype(dtype)):
        raise ValueError(f"out has shape {out.shape} and dtype {out.dtype}; "
                         f"expected {X.shape} and {np.dtype(dtype)}")
    scaled = np.empty(X.shape, dtype=dtype) if out is None else out
    # float64 results are computed in place; others through one block-sized float64
    # buffer, reused
    buffer = None if np.dtype(dtype) == np.float64 else np.empty(
        (_block_rows(X),) + X.shape[1:], dtype=np.float64)
    highest, lowest = -np.inf, np.inf
    with np.errstate(over="ignore"):  # an overflow to inf is refused below
        for start, block in _row_blocks(X):
            target = scaled[start:start + len(block)]
            work = target if buffer is None else buffer[:len(block)]
            np.subtract(block, offset, out=work)
            work /= scale
            if buffer is not None:
                target[...] = work
            if target.size:  # the extremes of the whole block, while it is cached
                top, bottom = np.max(target), np.min(target)
                if np.isnan(top):  # a NaN must not hide another column's overflow
                    top, bottom = np.nanmax(target), np.nanmin(target)
                highest = np.fmax(highest, top)
                lowest = np.fmin(lowest, bottom)
    if highest > NETWORK_INPUT_LIMIT or lowest < -NETWORK_INPUT_LIMIT:
        beyond = ((np.max(scaled, axis=0) > NETWORK_INPUT_LIMIT)
                  | (np.min(scaled, axis=0) < -NETWORK_INPUT_LIMIT))
        where = (f"{name} columns {np.flatnonzero(beyond)[:10].tolist()} hold"
                 if np.ndim(beyond) else f"{name} holds")
        raise ValueError(
            f"{where} values beyond {NETWORK_INPUT_LIMIT:.1e} once scaled (in training "
            f"standard deviations from the training mean; as given with "
            f"scale_features=False), beyond the float32 range the networks compute "
            f"in; check their units.")
    return scaled


def column_scaling(X, name="X", columns=None):
    """Per-column ``(offset, scale)`` that standardise ``X`` (2-D, float64).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Float64 or float32, in any memory order (another array-like is converted to
        float64 first). The statistics are those of the C-ordered float64 copy of
        ``X``, to the bit, without that copy (:func:`_mean_and_std`).
    name : str
        Named in the error for data outside what float64 can standardise.
    columns : array of int, optional
        Standardise only these columns: the statistics of the C-ordered float64 copy
        of ``X[:, columns]`` (NumPy's own ``X[:, columns]`` is F-ordered, and its
        ``mean`` sums each column pairwise: other last bits), without that copy
        either. Errors name the columns by their index in ``X``.

    Returns
    -------
    offset, scale : ndarray of shape (n_features,) or (len(columns),)
        Mean and standard deviation; a constant column gets its value and 1.
    """
    if not (isinstance(X, np.ndarray) and X.dtype in (np.float32, np.float64)):
        X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:  # one column; its statistics come back as 0-d arrays
        offset, scale = column_scaling(X[:, None], name=name, columns=columns)
        return offset.reshape(()), scale.reshape(())
    if columns is None:
        def pick(block):
            return block
        index = np.arange(X.shape[1])
    else:
        index = np.asarray(columns, dtype=np.intp)

        def pick(block):
            return block[:, index]
    first = pick(X[:1]).astype(np.float64)[0]
    constant = all_rows(X, lambda block: pick(block) == first)
    offset, scale = _mean_and_std(X, pick)
    # the rare columns whose mean or squares left the float64 range: from deviations
    # to the first row, scaled by their largest
    bad = ~constant & ~(np.isfinite(offset) & np.isfinite(scale) & (scale > 0))
    if bad.any():
        with np.errstate(over="ignore"):  # an overflow is refused below
            deviation = pick(X)[:, bad].astype(np.float64) - first[bad]
            centre, scale[bad] = _centre_and_scale(deviation)
        offset[bad] = first[bad] + centre
    offset = np.where(constant, first, offset)
    scale = np.where(constant, 1.0, scale)
    if not (np.all(np.isfinite(offset)) and np.all(np.isfinite(scale))):
        wide = index[~(np.isfinite(offset) & np.isfinite(scale))]
        raise ValueError(
            f"{name}: columns {wide[:10].tolist()} span more than float64 can "
            f"standardise (differences beyond 1e308); rescale them.")
    return offset, scale


def standardize_outcome(y):
    """``((y - mean) / scale, mean, scale)`` in float64, exact under an offset.

    The deviations are taken from a data value first (``y - y[0]`` is exact for values
    within a factor two of each other, Sterbenz's lemma), so ``y + 1e9`` standardises
    to the same bits as ``y`` whenever ``y + 1e9`` itself is exact: a large offset does
    not change what the network sees, and effects (``scale * (eta1 - eta0)``) do not
    depend on it. A constant ``y`` gets scale 1.
    """
    with np.errstate(over="ignore"):  # an overflow is refused just below
        deviation = y - y[0]
    if not np.all(np.isfinite(deviation)):
        raise ValueError("y spans more than float64 can standardise (differences "
                         "beyond 1e308); rescale it.")
    centre, scale = (float(v[0]) for v in _centre_and_scale(deviation[:, None]))
    scale = scale or 1.0  # a constant y
    return (deviation - centre) / scale, float(y[0] + centre), scale
