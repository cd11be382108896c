"""Storing a fit's training data, hashing data, and saving / loading fits.

A fit (an ``xarray.DataTree``) carries everything needed to predict again without the
original data frame:

* the group ``training_data``: the columns the model uses (labels, predictors, group
  factors, weights), one variable per column over the ``obs`` dimension; pandas
  categoricals are stored as integer codes with their categories, strings as strings,
  booleans as booleans, with the column's original name and dtype in the variable's attrs;
* root attrs ``softbayes_*`` (formula, family and options, priors, hashes) -- see
  :mod:`softbayes.model`.

:func:`softbayes.Model.from_fit` rebuilds the training data frame from that group and re-runs
the formula on it, which reproduces the design exactly (formulae's stateful transforms such
as ``scale()`` and categorical levels are functions of the training data).

Save with ``fit.to_netcdf(path)`` or ``fit.to_zarr(path)`` (or :func:`save_fit`); read back
with :func:`load_fit` or ``xarray.open_datatree``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "FIT_ATTRS",
    "TRAINING_GROUP",
    "FitFileError",
    "data_hash",
    "dataset_to_frame",
    "frame_to_dataset",
    "load_fit",
    "save_fit",
    "unknown_fit_attrs",
    "validate_fit",
]

TRAINING_GROUP = "training_data"
OBS_DIM = "obs"


def _kind(series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "string"
    raise ValueError(
        f"Column {series.name!r} has dtype {dtype}, which a fit cannot store; convert it "
        "to numbers, strings or a pandas categorical."
    )


def _var_name(col, i, taken):
    name = str(col)
    if "/" in name or name in taken or name == OBS_DIM or not name:
        name = f"column_{i}"
    return name


def frame_to_dataset(df: pd.DataFrame) -> xr.Dataset:
    """Encode the columns of ``df`` as a Dataset over ``obs`` (netCDF- and zarr-safe)."""
    data_vars = {}
    for i, col in enumerate(df.columns):
        s = df[col]
        kind = _kind(s)
        attrs = {"column": str(col), "kind": kind, "pandas_dtype": str(s.dtype)}
        if kind == "categorical":
            cats = list(s.cat.categories)
            attrs["categories"] = json.dumps([_json_scalar(c) for c in cats])
            attrs["ordered"] = int(bool(s.cat.ordered))
            values = np.asarray(s.cat.codes, dtype=np.int64)
        elif kind == "string":
            values = np.asarray(s.astype(str).to_numpy(), dtype=str)
        elif kind == "bool":
            values = np.asarray(s, dtype=bool)
        else:
            values = s.to_numpy()
        data_vars[_var_name(col, i, data_vars)] = xr.Variable((OBS_DIM,), values, attrs=attrs)
    return xr.Dataset(data_vars, coords={OBS_DIM: np.arange(len(df))})


def _json_scalar(v):
    if isinstance(v, np.generic):
        v = v.item()
    if not isinstance(v, str | int | float | bool):
        v = str(v)
    return v


def dataset_to_frame(ds) -> pd.DataFrame:
    """Decode :func:`frame_to_dataset`'s Dataset back into the data frame."""
    if hasattr(ds, "to_dataset"):
        ds = ds.to_dataset()
    cols = {}
    for name, var in ds.data_vars.items():
        attrs = var.attrs
        col = attrs.get("column", name)
        kind = attrs.get("kind", "numeric")
        values = np.asarray(var.values)
        if kind == "categorical":
            cats = json.loads(attrs["categories"])
            cols[col] = pd.Categorical.from_codes(
                values.astype(np.int64), categories=cats, ordered=bool(int(attrs["ordered"]))
            )
        elif kind == "string":
            obj = np.asarray([str(v) for v in values], dtype=object)
            try:
                cols[col] = pd.Series(obj, dtype=attrs.get("pandas_dtype", "object"))
            except (TypeError, ValueError):
                cols[col] = pd.Series(obj, dtype=object)
        elif kind == "bool":
            cols[col] = values.astype(bool)
        else:
            dtype = attrs.get("pandas_dtype")
            try:
                cols[col] = values.astype(dtype) if dtype else values
            except TypeError:
                cols[col] = values
    return pd.DataFrame(cols)


def data_hash(df: pd.DataFrame, columns=None) -> str:
    """SHA-256 of the values (and names and kinds) of ``columns`` of ``df``.

    Canonical and storage-independent: computed from the same encoding as
    :func:`frame_to_dataset`, so a data frame rebuilt from a saved fit has the same hash.
    """
    columns = list(df.columns if columns is None else columns)
    ds = frame_to_dataset(df[columns])
    h = hashlib.sha256()
    for name in ds.data_vars:
        var = ds[name]
        h.update(json.dumps([var.attrs["column"], var.attrs["kind"]]).encode())
        if var.attrs["kind"] == "categorical":
            h.update(var.attrs["categories"].encode())
        values = np.asarray(var.values)
        if var.attrs["kind"] == "string":
            h.update("\x1f".join(map(str, values)).encode())
        elif var.attrs["kind"] == "numeric":
            h.update(np.ascontiguousarray(values.astype(np.float64)).tobytes())
        else:
            h.update(np.ascontiguousarray(values.astype(np.int64)).tobytes())
    return h.hexdigest()


def labels_hash(labels) -> str:
    """SHA-256 of the label values (float64, with their shape)."""
    arr = np.ascontiguousarray(np.asarray(labels, dtype=np.float64))
    h = hashlib.sha256(json.dumps(list(arr.shape)).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- validation
# A fit file is untrusted input (it may come from anyone): every softbayes_* attr that
# softbayes reads is checked here, once, before anything is built from it -- its type, the
# shape of its JSON, formulas through the sandbox. Nothing is unpickled, evaluated or
# imported by a name read from a file.

ATTR_PREFIX = "softbayes_"
_MAX_TEXT = 100_000  # characters of a text attr (formulas are capped lower by the sandbox)
_MAX_JSON = 50_000_000  # characters of a JSON attr (a sandwich covariance can be large)
_MAX_NAME = 1_000  # characters of a column name, a prior's term or its source
_HEX64 = re.compile(r"[0-9a-f]{64}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DTYPE = re.compile(r"[A-Za-z0-9_\[\], :]{1,64}")
_COLUMN_KINDS = ("categorical", "string", "bool", "numeric")


class FitFileError(ValueError):
    """A fit whose attrs cannot be used; the message names the file (or fit) and the attr.

    Attributes
    ----------
    source : str
        The file (quoted) or ``"the fit"`` for a fit in memory.
    key : str
        The attr, e.g. ``"softbayes_formula"``.
    reason : str
    """

    def __init__(self, source, key, reason):
        self.source = source
        self.key = key
        self.reason = reason
        super().__init__(f"{source}: attr {key!r}: {reason}")


class _Bad(Exception):
    """Internal: why one attr is refused."""


def _plain(v):
    """NumPy scalars and 0-d arrays (as netCDF returns attrs) as Python values."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bytes):  # fixed-length strings of other netCDF writers
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError:
            raise _Bad("the text is not UTF-8.") from None
    return v


def _type_name(v) -> str:
    return type(v).__name__


def _text(v, limit=_MAX_TEXT):
    v = _plain(v)
    if not isinstance(v, str):
        raise _Bad(f"expected text, got {_type_name(v)}.")
    if len(v) > limit:
        raise _Bad(f"text longer than {limit} characters.")
    if "\x00" in v:
        raise _Bad("the text holds a NUL character.")
    return v


def _short(v):
    return _text(v, 200)


def _choice(*allowed):
    def check(v):
        v = _text(v, 100)
        if v not in allowed:
            raise _Bad(f"{v!r} is not one of {', '.join(allowed)}.")
        return v

    return check


def _integer(v):
    v = _plain(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad(f"expected an integer, got {_type_name(v)} {v!r:.50}.")
    return v


def _count(v):
    v = _integer(v)
    if v < 0:
        raise _Bad(f"expected a count (0 or more), got {v}.")
    return v


def _flag(v):
    v = _plain(v)
    if isinstance(v, bool):
        return int(v)
    if not isinstance(v, int) or v not in (0, 1):
        raise _Bad(f"expected 0 or 1, got {_type_name(v)} {v!r:.50}.")
    return v


def _number(v):
    v = _plain(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad(f"expected a number, got {_type_name(v)} {v!r:.50}.")
    return float(v)


def _open_unit(v):
    v = _number(v)
    if not 0.0 < v < 1.0:
        raise _Bad(f"expected a number strictly between 0 and 1, got {v!r}.")
    return v


def _hex64(v):
    v = _text(v, 64)
    if not _HEX64.fullmatch(v):
        raise _Bad("expected a SHA-256 hex digest (64 characters 0-9a-f).")
    return v


def _identifier(v):
    v = _text(v, 100)
    if not _IDENT.fullmatch(v):
        raise _Bad(f"expected a plain name (letters, digits, _), got {v!r}.")
    return v


def _refuse_constant(name):
    raise _Bad(f"JSON constant {name} is not allowed here.")


def _json(v, *, non_finite=False):
    text = _text(v, _MAX_JSON)
    try:
        return json.loads(text, parse_constant=None if non_finite else _refuse_constant)
    except _Bad:
        raise
    except RecursionError:
        raise _Bad("the JSON is nested too deeply.") from None
    except ValueError as err:
        raise _Bad(f"not valid JSON: {err}.") from None


def _name_list(v, *, at_least=0):
    value = _json(v)
    if not isinstance(value, list) or len(value) < at_least or not all(
            isinstance(x, str) and 0 < len(x) <= _MAX_NAME and "\x00" not in x for x in value):
        least = f"at least {at_least} " if at_least else ""
        raise _Bad(f"expected a JSON list of {least}names (non-empty strings).")
    return value


def _label_columns(v):
    value = _name_list(v, at_least=1)
    if len(set(value)) != len(value):
        raise _Bad("a label column is named twice.")
    return value


def _options(v):
    value = _json(v)
    if not isinstance(value, dict):
        raise _Bad("expected a JSON object of family options.")
    unknown = sorted(set(value) - {"weights", "threshold", "squeeze"})
    if unknown:
        raise _Bad(f"unknown option(s) {unknown}; expected weights, threshold, squeeze.")
    w = value.get("weights")
    if w is not None and not (isinstance(w, str) and 0 < len(w) <= _MAX_NAME):
        raise _Bad("option 'weights' must be a column name or null.")
    if "threshold" in value:
        _open_unit(value["threshold"])
    if "squeeze" in value:
        _flag(value["squeeze"])
    return value


def _finite_numbers(v) -> bool:
    if isinstance(v, list):
        return all(_finite_numbers(x) for x in v)
    return isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)


def _priors(v):
    value = _json(v)
    if not isinstance(value, dict):
        raise _Bad("expected a JSON object {term: {dist, kwargs, source}}.")
    for term, p in value.items():
        if not (0 < len(term) <= _MAX_NAME) or "\x00" in term:
            raise _Bad(f"prior term {term[:50]!r} is not a term name.")
        if not isinstance(p, dict) or not set(p) <= {"dist", "kwargs", "source"}:
            raise _Bad(f"prior of {term!r}: expected an object with keys dist, kwargs, "
                       "source.")
        dist = p.get("dist")
        if not (isinstance(dist, str) and len(dist) <= 100 and _IDENT.fullmatch(dist)
                and not dist.startswith("_")):
            raise _Bad(f"prior of {term!r}: 'dist' must be a PyMC distribution name, got "
                       f"{dist!r:.60}.")
        kwargs = p.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise _Bad(f"prior of {term!r}: 'kwargs' must be an object.")
        for k, x in kwargs.items():
            if not (len(k) <= 100 and _IDENT.fullmatch(k) and not k.startswith("_")):
                raise _Bad(f"prior of {term!r}: parameter name {k[:50]!r} is not a name.")
            if not _finite_numbers(x):
                raise _Bad(f"prior of {term!r}: parameter {k!r} must be a finite number or "
                           "a list of finite numbers.")
        src = p.get("source", "user")
        if not (isinstance(src, str) and len(src) <= _MAX_NAME):
            raise _Bad(f"prior of {term!r}: 'source' must be a short text.")
    return value


def _numbers(v):
    value = _json(v, non_finite=True)

    def ok(x):
        if isinstance(x, list):
            return all(ok(y) for y in x)
        return isinstance(x, int | float) and not isinstance(x, bool)

    if not ok(value):
        raise _Bad("expected a JSON number or (nested) list of numbers.")
    return value


def _families():
    from softbayes.terms.families import FAMILIES

    return tuple(FAMILIES)


#: The ``softbayes_*`` attrs softbayes writes and reads, with the check of each (formulas
#: are checked by the sandbox in :func:`validate_fit`).
FIT_ATTRS = {
    "version": _short,
    "family": None,
    "formula": None,
    "phi_formula": None,
    "label_columns": _label_columns,
    "options": _options,
    "priors": _priors,
    "data_hash": _hex64,
    "labels_hash": _hex64,
    "n_obs": _count,
    "log_likelihood_var": _identifier,
    "log_likelihood_kind": _choice("cross_entropy", "density", "probability"),
    "sampler": _short,
    "random_seed": _integer,
    "draws": _count,
    "tune": _count,
    "chains": _count,
    "likelihood_kernel": _choice("fused", "graph"),
    "method": _choice("nuts", "laplace", "advi", "pathfinder"),
    "calibration": _choice("none", "dispersion", "sandwich"),
    "threshold": _open_unit,
    "n_thresholded": _count,
    "squeeze": _flag,
    "n_squeezed": _count,
    "dispersion": _number,
    "dispersion_df": _integer,
    "learning_rate": _number,
    "cli_fit_seconds": _number,
    "cli_cache_key": _short,
    "approx_seconds": _number,
    "log_likelihood_draws": _count,
    "sandwich_adjustment": _numbers,
    "sandwich_mode": _numbers,
    "sandwich_covariance": _numbers,
    "sandwich_parameters": _name_list,
    "optimizer_iterations": _count,
    "optimizer_success": _flag,
    "optimizer_message": _text,
    "mode_seconds": _number,
    "pathfinder_iterate": _integer,
    "pathfinder_path_length": _count,
    "pathfinder_elbo": _number,
    "pathfinder_khat": _number,
    "pathfinder_psis_resample": _flag,
    "pathfinder_seconds": _number,
    "advi_learning_rate": _number,
    "advi_iterations": _count,
    "advi_batch_size": _count,
    "advi_final_loss": _number,
}


def unknown_fit_attrs(attrs) -> list[str]:
    """The ``softbayes_*`` keys of ``attrs`` that softbayes does not know (they are ignored)."""
    return [k for k in attrs if isinstance(k, str) and k.startswith(ATTR_PREFIX)
            and k[len(ATTR_PREFIX):] not in FIT_ATTRS]


def _check_training_data(fit, source):
    if TRAINING_GROUP not in getattr(fit, "children", {}):
        return
    group = fit[TRAINING_GROUP]
    ds = group.to_dataset() if hasattr(group, "to_dataset") else group
    for name, var in ds.data_vars.items():
        key = f"{TRAINING_GROUP}/{name}"
        a = var.attrs
        try:
            if "column" in a:
                _text(a["column"], _MAX_NAME)
            kind = _choice(*_COLUMN_KINDS)(a["kind"]) if "kind" in a else "numeric"
            if "pandas_dtype" in a and not _DTYPE.fullmatch(_text(a["pandas_dtype"], 64)):
                raise _Bad(f"pandas_dtype {a['pandas_dtype']!r} is not a dtype name.")
            if kind == "categorical":
                cats = _json(a.get("categories"))
                if not isinstance(cats, list) or not all(
                        isinstance(c, str | int | float | bool) for c in cats):
                    raise _Bad("categories must be a JSON list of numbers or strings.")
                _flag(a.get("ordered"))
        except _Bad as err:
            raise FitFileError(source, key, str(err)) from None
        except KeyError as err:
            raise FitFileError(source, key, f"missing attr {err}.") from None


def validate_fit(fit, *, source="the fit", extra_names=()) -> dict:
    """Check the ``softbayes_*`` attrs (and training-data attrs) of a fit before use.

    Parameters
    ----------
    fit : xarray.DataTree
        A fit, e.g. just read from a file.
    source : str, default "the fit"
        Named in errors and warnings (the file, quoted).
    extra_names : iterable of str, optional
        Names of functions the caller passes in Python (``extra_namespace=``) that the
        stored formula may call.

    Returns
    -------
    dict
        The known attrs, checked and decoded (JSON parsed, NumPy scalars as Python values),
        keyed without the ``softbayes_`` prefix. Unknown ``softbayes_*`` attrs are left
        out, with a warning naming each.

    Raises
    ------
    FitFileError
        (a ValueError) naming ``source`` and the attr, e.g. a formula the sandbox refuses,
        a family softbayes does not know, malformed JSON.
    """
    from softbayes.terms.sandbox import FormulaError, check_formula

    attrs = dict(getattr(fit, "attrs", None) or {})
    for key in unknown_fit_attrs(attrs):
        warnings.warn(f"{source}: unknown attr {key!r} is ignored (not written by this "
                      "softbayes version).", UserWarning, stacklevel=3)
    out = {}
    for short, check in FIT_ATTRS.items():
        key = ATTR_PREFIX + short
        if key not in attrs:
            continue
        try:
            if short == "family":
                out[short] = _choice(*_families())(attrs[key])
            elif short in ("formula", "phi_formula"):
                text = _text(attrs[key])
                if text or short == "formula":
                    check_formula(text, extra_names=extra_names,
                                  rhs_only=short == "phi_formula")
                out[short] = text
            else:
                out[short] = check(attrs[key])
        except _Bad as err:
            raise FitFileError(source, key, str(err)) from None
        except FormulaError as err:
            raise FitFileError(source, key, str(err)) from None
    if out.get("phi_formula") and out.get("family") not in (None, "beta"):
        raise FitFileError(source, ATTR_PREFIX + "phi_formula",
                           f"a phi formula belongs to the beta family, not {out['family']!r}.")
    _check_training_data(fit, source)
    return out


def _is_zarr(path) -> bool:
    path = os.fspath(path)
    return path.rstrip("/").endswith(".zarr") or os.path.isdir(path)


def save_fit(fit, path):
    """Write a fit to netCDF (any path) or zarr (a path ending in ``.zarr``)."""
    if _is_zarr(path):
        fit.to_zarr(path, mode="w")
    else:
        fit.to_netcdf(path)
    return path


def load_fit(path, *, check=True, extra_namespace=None):
    """Read a fit written with ``fit.to_netcdf`` / ``fit.to_zarr`` (or :func:`save_fit`).

    A fit file is untrusted input: its ``softbayes_*`` attrs are checked by
    :func:`validate_fit` (types, JSON shape, formulas through the sandbox) whether or not
    ``check`` is set; unknown ``softbayes_*`` attrs are dropped with a warning.

    Parameters
    ----------
    path : str or path-like
        A netCDF file, or a zarr store (a directory or a path ending in ``.zarr``).
    check : bool, default True
        Rebuild the model (:meth:`softbayes.Model.from_fit`), recompute the hashes of the
        stored training data and compare them with the fit's ``softbayes_data_hash`` /
        ``softbayes_labels_hash`` attrs.
    extra_namespace : dict, optional
        Functions of your own that the stored formula calls (as for
        :meth:`softbayes.Model.from_fit`); only these names, never attributes of them.

    Returns
    -------
    xarray.DataTree
        Loaded into memory (the file is closed), ready for :func:`softbayes.analysis.predict`.

    Raises
    ------
    ValueError
        A file that is not a softbayes fit; :class:`FitFileError` (a ValueError) naming the
        file and the attr for an attr that fails its check.
    """
    engine = "zarr" if _is_zarr(path) else None
    try:
        with xr.open_datatree(path, engine=engine) as tree:
            fit = tree.load().copy()
    except Exception as err:  # not netCDF/zarr, truncated, unreadable, malformed inside
        raise ValueError(
            f"{os.fspath(path)!r} cannot be read as a softbayes fit (a netCDF file or a zarr "
            f"store written by softbayes): {type(err).__name__}: {err}"
        ) from err
    if "softbayes_family" not in fit.attrs:
        raise ValueError(
            f"{os.fspath(path)!r} is not a softbayes fit (no 'softbayes_family' attribute)."
        )
    validate_fit(fit, source=repr(os.fspath(path)), extra_names=set(extra_namespace or {}))
    for key in unknown_fit_attrs(fit.attrs):  # warned about: not carried any further
        del fit.attrs[key]
    if check:
        from softbayes.model import Model

        Model.from_fit(fit, check=True, extra_namespace=extra_namespace)
    return fit
