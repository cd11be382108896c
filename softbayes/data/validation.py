"""Input checks for soft labels, weights and observation indices.

Every check raises :class:`ValueError` naming the input (``name``, e.g. the data-frame
column), the problem, how many rows have it, the first few row positions (0-based) and
what to do about it. Nothing is clipped, renormalized or dropped silently: a soft label of
1.0000001 or a probability vector summing to 0.98 is an error, because quietly repairing
it would change the likelihood the user thinks they are fitting.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "check_parameter_shape",
    "row_summary",
    "validate_obs_index",
    "validate_soft_labels",
    "validate_unit_interval",
    "validate_weights",
]

_MAX_SHOWN = 5


def row_summary(mask, index=None, k=_MAX_SHOWN) -> tuple[int, str]:
    """``(count, shown)`` of the rows where ``mask`` holds, for messages about bad rows.

    ``shown`` lists the first ``k`` of them (their ``index`` labels when given, else their
    0-based positions), with ``", ..."`` when there are more.
    """
    idx = np.flatnonzero(mask)
    labels = idx if index is None else np.asarray(index)[idx]
    shown = ", ".join(str(v) for v in labels[:k])
    return int(idx.size), shown + (", ..." if idx.size > k else "")


def _fail(name, mask, n_rows, problem, fix):
    count, shown = row_summary(mask)
    raise ValueError(f"{name}: {count} of {n_rows} rows {problem} (row positions {shown}). {fix}")


def _as_float_array(values, name):
    if values is None:
        raise ValueError(f"{name}: got None; pass an array of numbers.")
    if hasattr(values, "to_numpy"):  # pandas Series / DataFrame
        values = values.to_numpy()
    try:
        arr = np.asarray(values)
    except Exception as err:  # ragged lists and similar
        raise ValueError(f"{name}: cannot be read as a numeric array ({err}).") from err
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{name}: must be numeric (got dtype {arr.dtype}); convert the column to "
            "float before fitting."
        )
    return arr.astype(np.float64, copy=True)


def _row_any(mask, row_axes):
    """Per row (along the first axis): whether any of its entries is flagged."""
    return mask.any(axis=row_axes) if row_axes else mask


def _check_finite(arr, name, n, row_axes, fix):
    """Raise if any row holds NaN or inf; ``fix`` says what to do about it."""
    bad_rows = _row_any(~np.isfinite(arr), row_axes)
    if bad_rows.any():
        _fail(name, bad_rows, n, "contain NaN or inf", fix)


def _check_unit_range(arr, name, n, row_axes, what):
    """Raise if any value lies outside [0, 1]; percentages (0-100) get their own hint."""
    out_rows = _row_any((arr < 0.0) | (arr > 1.0), row_axes)
    if out_rows.any():
        lo, hi = float(arr.min()), float(arr.max())
        positive = arr[arr > 0.0]
        # percentages: everything in [0, 100] and most of the nonzero values above 1
        if lo >= 0.0 and hi <= 100.0 and float(np.mean(positive > 1.0)) > 0.5:
            fix = (
                f"{what} in [0, 1]; these look like percentages (0-100): divide by 100 "
                "(e.g. df[col] / 100). Nothing is clipped."
            )
        else:
            fix = f"{what}: rescale them to [0, 1]; nothing is clipped."
        _fail(name, out_rows, n, f"lie outside [0, 1] (range seen: {lo:g} to {hi:g})", fix)


def validate_unit_interval(values, *, name="observed"):
    """Check values of a density on [0, 1] (any shape) and return them as float64.

    Used for the observed values of :class:`softbayes.ContinuousBernoulli` (e.g. soft labels
    of shape ``(n,)`` or pixel intensities of shape ``(n, 64)``): they must be numeric (booleans
    and integers are read as 0/1), finite and inside ``[0, 1]``. The message names the first
    positions (along the first axis) of the offending rows. Nothing is clipped.
    """
    arr = _as_float_array(values, name)
    if arr.ndim == 0:
        arr_rows = arr.reshape(1)
    else:
        arr_rows = arr
    n = arr_rows.shape[0]
    if arr_rows.size == 0:
        return arr
    row_axes = tuple(range(1, arr_rows.ndim))
    fix = (
        "Drop or impute these rows explicitly (to let PyMC impute them as parameters, "
        "pass a masked array, np.ma.masked_invalid(values))."
    )
    _check_finite(arr_rows, name, n, row_axes, fix)
    _check_unit_range(arr_rows, name, n, row_axes, "A density on [0, 1] takes values")
    return arr


def validate_soft_labels(labels, *, name="labels", n_classes=None, atol=1e-6):
    """Check soft labels and return them as a float64 array.

    Parameters
    ----------
    labels : array_like
        Binary soft labels, shape ``(n,)``, each the probability that the class is 1; or
        probability vectors, shape ``(n, K)``, each row on the simplex.
    name : str
        Name used in error messages (e.g. the data-frame column).
    n_classes : int, optional
        ``None``: 1-D labels are binary, 2-D labels are probability vectors with ``K`` read
        from the second axis (``K >= 2``). An integer ``K``: labels must be ``(n, K)``.
    atol : float
        Tolerance on ``|sum_k l_ik - 1|`` for probability vectors.

    Returns
    -------
    ndarray of float64
        A copy of the labels, unchanged in value.

    Raises
    ------
    ValueError
        Non-numeric or empty input; wrong number of dimensions or classes; NaN or inf;
        values outside [0, 1]; probability vectors whose rows do not sum to 1 within
        ``atol``. The message names the count and first row positions of offending rows.
    """
    arr = _as_float_array(labels, name)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name}: no rows (shape {arr.shape}); need at least one label.")
    if n_classes is not None:
        n_classes = int(n_classes)
        if n_classes < 2:
            raise ValueError(f"{name}: n_classes must be at least 2, got {n_classes}.")
        if arr.ndim != 2 or arr.shape[1] != n_classes:
            raise ValueError(
                f"{name}: expected probability vectors of shape (n, {n_classes}), got shape "
                f"{arr.shape}. Pass one column per class."
            )
    if arr.ndim > 2:
        raise ValueError(
            f"{name}: expected shape (n,) for binary soft labels or (n, K) for probability "
            f"vectors, got shape {arr.shape}."
        )
    if arr.ndim == 2 and arr.shape[1] < 2:
        raise ValueError(
            f"{name}: probability vectors need at least 2 columns, got shape {arr.shape}. "
            "For binary soft labels pass a 1-D array (the probability of class 1)."
        )
    n = arr.shape[0]
    row_axes = tuple(range(1, arr.ndim))
    fix = "Drop or impute these rows explicitly; softbayes does not guess labels."
    _check_finite(arr, name, n, row_axes, fix)
    _check_unit_range(arr, name, n, row_axes, "Soft labels are probabilities")
    if arr.ndim == 2:
        sums = arr.sum(axis=1)
        off = np.abs(sums - 1.0) > atol
        if off.any():
            worst = float(sums[off][np.argmax(np.abs(sums[off] - 1.0))])
            _fail(
                name,
                off,
                n,
                f"do not sum to 1 within {atol:g} (worst row sum {worst!r})",
                "Each row must be a probability vector; normalize explicitly "
                "(labels / labels.sum(axis=1, keepdims=True)) if that is what you mean — "
                "softbayes does not renormalize.",
            )
    return arr


def validate_weights(weights, n_rows, *, name="weights"):
    """Check observation weights and return them as a float64 array of length ``n_rows``.

    ``None`` gives unit weights; a scalar is broadcast. Weights must be finite and
    non-negative, with at least one positive (zero weights on some rows are allowed: those
    rows do not contribute).

    Raises
    ------
    ValueError
        Non-numeric input, wrong shape, NaN or inf, negative values, all weights zero.
    """
    n_rows = int(n_rows)
    if weights is None:
        return np.ones(n_rows, dtype=np.float64)
    arr = _as_float_array(weights, name)
    if arr.ndim == 0:
        arr = np.full(n_rows, float(arr), dtype=np.float64)
    if arr.shape != (n_rows,):
        raise ValueError(
            f"{name}: expected one weight per row, shape ({n_rows},), got shape {arr.shape}."
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        _fail(name, bad, n_rows, "are NaN or inf", "Give every row a finite weight.")
    neg = arr < 0.0
    if neg.any():
        _fail(
            name,
            neg,
            n_rows,
            f"are negative (smallest {float(arr.min())!r})",
            "Weights count how often a row is seen and must be >= 0.",
        )
    if not (arr > 0.0).any():
        raise ValueError(
            f"{name}: all {n_rows} weights are zero, so there is no data to fit. "
            "Give at least one row a positive weight."
        )
    return arr


def validate_obs_index(obs_index, n_rows, *, name="obs_index"):
    """Check a row-to-observation map and return ``(obs_index as int64, n_obs)``.

    ``obs_index[r]`` is the original observation that row ``r`` belongs to (e.g. the two
    rows of one point of the duplicated data set). The values must be integers covering
    ``0, ..., n_obs - 1`` with no gaps, so that every original observation gets one
    pointwise log-likelihood term. ``None`` means one observation per row.
    """
    n_rows = int(n_rows)
    if obs_index is None:
        return np.arange(n_rows, dtype=np.int64), n_rows
    if hasattr(obs_index, "to_numpy"):
        obs_index = obs_index.to_numpy()
    arr = np.asarray(obs_index)
    if arr.shape != (n_rows,):
        raise ValueError(
            f"{name}: expected one entry per row, shape ({n_rows},), got shape {arr.shape}."
        )
    if arr.dtype.kind == "f":
        nonint = ~np.isfinite(arr) | (arr != np.round(arr))
        if nonint.any():
            _fail(name, nonint, n_rows, "are not integers", "Pass integer observation ids.")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: must be integers (got dtype {arr.dtype}).")
    arr = arr.astype(np.int64)
    neg = arr < 0
    if neg.any():
        _fail(name, neg, n_rows, "are negative", "Observation ids run from 0 to n_obs - 1.")
    n_obs = int(arr.max()) + 1
    seen = np.zeros(n_obs, dtype=bool)
    seen[arr] = True
    if not seen.all():
        missing = np.flatnonzero(~seen)
        shown = ", ".join(str(int(i)) for i in missing[:_MAX_SHOWN])
        raise ValueError(
            f"{name}: observation ids must cover 0..{n_obs - 1} without gaps; "
            f"{missing.size} ids never appear ({shown}{', ...' if missing.size > 5 else ''}). "
            "Renumber them, e.g. with np.unique(obs_index, return_inverse=True)[1]."
        )
    return arr, n_obs


def _static_shape(param):
    """Static shape of a parameter (None for unknown dims), or None if unknowable."""
    if param is None:
        return None
    shape = getattr(getattr(param, "type", None), "shape", None)
    if shape is not None:  # PyTensor variable
        if any(s is None for s in shape):
            try:
                from pymc.pytensorf import constant_fold

                folded = constant_fold([param.shape], raise_not_constant=False)[0]
                if isinstance(folded, np.ndarray):
                    return tuple(int(s) for s in folded)
            except Exception:
                pass
        return tuple(shape)
    return np.shape(param)


def check_parameter_shape(labels_shape, param, *, param_name, name="labels"):
    """Raise if ``param`` does not broadcast to exactly ``labels_shape``.

    A parameter may be smaller (e.g. one logit shared by all rows) but must not enlarge the
    labels' shape (e.g. a ``(n,)`` logit against ``(n, 1)`` labels would silently build an
    ``(n, n)`` likelihood). Dimensions that are unknown before sampling are not checked.
    """
    shape = _static_shape(param)
    if shape is None:
        return
    labels_shape = tuple(int(s) for s in labels_shape)
    problem = len(shape) > len(labels_shape)
    if not problem:
        for s, t in zip(shape[::-1], labels_shape[::-1], strict=False):
            if s is not None and s != 1 and s != t:
                problem = True
                break
    if problem:
        shown = tuple("?" if s is None else int(s) for s in shape)
        raise ValueError(
            f"{param_name}: shape {shown} does not match {name} of shape {labels_shape}; "
            f"{param_name} must broadcast to the labels' shape (one value per row, or one "
            "value shared by all rows)."
        )
