"""Storing a fit's training data, hashing data, rebuilding a model from a fit, and files.

A fit (an ``xarray.DataTree``) carries everything needed to predict again without the
original data frame:

* the group ``training_data``: the columns the model uses (labels, predictors, group
  factors, weights), one variable per column over the ``obs`` dimension; pandas
  categoricals are stored as integer codes with their categories, strings as strings,
  booleans as booleans, with the column's original name and dtype in the variable's attrs;
* root attrs ``softbayes_*`` (formula, family and options, priors, hashes) -- see
  :mod:`softbayes.model`; they are written, read and checked by :mod:`softbayes.io.attrs`.

:func:`description_from_fit` (and so :meth:`softbayes.Model.from_fit`) rebuilds the
training data frame from that group and re-runs the formula on it, which reproduces the
design exactly (formulae's stateful transforms such as ``scale()`` and categorical levels are
functions of the training data).

Save with ``fit.to_netcdf(path)`` or ``fit.to_zarr(path)`` (or :func:`save_fit`); read back
with :func:`load_fit` or ``xarray.open_datatree``.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pandas as pd
import xarray as xr

from softbayes.io.attrs import (
    FIT_ATTRS,
    TRAINING_GROUP,
    FitAttrs,
    FitFileError,
    attr_key,
    unknown_fit_attrs,
)
from softbayes.terms.description import describe_model
from softbayes.terms.families import family_class
from softbayes.terms.predictor import CLASS_DIM, CLASS_REDUCED_DIM
from softbayes.terms.priors import Prior

__all__ = [
    "FIT_ATTRS",
    "INTERNAL_GROUP",
    "LOGLIK_VAR",
    "OBS_DIM",
    "TRAINING_GROUP",
    "FitFileError",
    "data_hash",
    "dataset_to_frame",
    "description_from_fit",
    "description_hashes",
    "fit_likelihood_var",
    "frame_to_dataset",
    "hide_internal",
    "internal_variables",
    "likelihood_var",
    "load_fit",
    "obs_coords",
    "posterior_dataset",
    "save_fit",
    "unknown_fit_attrs",
    "validate_fit",
]

#: The observation dim of a fit's groups.
OBS_DIM = "obs"
#: The group of a fit that holds the sampled variables users do not read
#: (:func:`internal_variables`): out of ``az.summary(fit)``'s default view.
INTERNAL_GROUP = "posterior_internal"
#: Name of the likelihood term when the label columns cannot lend theirs
#: (:func:`likelihood_var`), and of fits whose attrs record no name.
LOGLIK_VAR = "labels"
#: Names the likelihood term never takes: dims and names of other groups' variables.
_RESERVED = frozenset({OBS_DIM, CLASS_DIM, CLASS_REDUCED_DIM, "chain", "draw", "coef",
                       "phi_coef", "X", "X_phi", "weights", "Intercept"})
#: Endings and beginnings of the names the model graph generates (containers, parameters).
_GENERATED_ENDS = ("_data", "_centered", "_dim", "__tempering")
_GENERATED_STARTS = ("phi_",)


def likelihood_var(description) -> str:
    """The name of the likelihood term of ``description``'s model: the label column
    (``"y ~ x"``: ``"y"``; ``"p(k, m) ~ x"``: ``"k"``), or the label columns joined by
    ``"__"`` for the multiclass families (``"c(a, b, c) ~ x"``: ``"a__b__c"``).

    It names the observed variable (``observed_data``, ``posterior_predictive``,
    ``prior_predictive``) and the ``log_likelihood`` variable, and is recorded in the
    attr ``log_likelihood_var``. :data:`LOGLIK_VAR` (``"labels"``) instead when that name is
    not a plain ASCII identifier of at most 100 characters or could clash with a name the
    model generates (a dim, a parameter such as ``phi``, ``Intercept``, a ``*_data``
    container).
    """
    name = "__".join(str(c) for c in description.label_columns)
    family = description.family
    taken = set(_RESERVED) | set(family.parameters)
    taken |= {n for n, _, _ in family.scalar_parameters()}
    for part in (description.main, description.phi):
        if part is not None:
            taken |= set(part.coords())
    plain = name.isascii() and name.isidentifier() and len(name) <= 100
    if (not plain or name in taken or name.endswith(_GENERATED_ENDS)
            or name.startswith(_GENERATED_STARTS)):
        return LOGLIK_VAR
    return name


def fit_likelihood_var(fit) -> str:
    """The name of a fit's likelihood variable: its attr ``log_likelihood_var``, else
    :data:`LOGLIK_VAR` (which fits without the attr, and older fits, use)."""
    name = fit.attrs.get(attr_key("log_likelihood_var"))
    return str(name) if isinstance(name, str) and name else LOGLIK_VAR


def internal_variables(description) -> list[str]:
    """The sampled variables of ``description``'s model that users do not read: the centred
    intercepts (``Intercept_centered``, ``phi_Intercept_centered``), of which the posterior's
    ``Intercept`` is the usual, uncentred form."""
    return [part.var("Intercept_centered") for part in (description.main, description.phi)
            if part is not None and part.design.intercept]


def hide_internal(idata, description):
    """Move the :func:`internal_variables` of ``idata``'s posterior into its
    :data:`INTERNAL_GROUP` group, so that ``az.summary(fit)`` and ArviZ's plots show what a
    user reads; :func:`posterior_dataset` puts them back for computations."""
    post = idata["posterior"].to_dataset()
    names = [n for n in internal_variables(description) if n in post.data_vars]
    if not names:
        return idata
    internal = post[names]
    if INTERNAL_GROUP in idata.children:
        kept = idata[INTERNAL_GROUP].to_dataset()
        internal = kept.drop_vars([n for n in names if n in kept.data_vars]).merge(internal)
    attrs = dict(post.attrs)
    idata["posterior"] = post.drop_vars(names)
    idata["posterior"].attrs.update(attrs)
    idata[INTERNAL_GROUP] = internal
    return idata


def posterior_dataset(fit) -> xr.Dataset:
    """A fit's posterior draws as one Dataset, the :data:`INTERNAL_GROUP` variables
    included: what predictions, diagnostics and the log-likelihood read."""
    post = fit["posterior"]
    post = post.to_dataset() if hasattr(post, "to_dataset") else post
    children = getattr(fit, "children", {})
    if INTERNAL_GROUP not in children:
        return post
    internal = fit[INTERNAL_GROUP].to_dataset()
    extra = [n for n in internal.data_vars if n not in post.data_vars]
    return post.merge(internal[extra]) if extra else post


def obs_coords(frame: pd.DataFrame) -> np.ndarray:
    """The coordinates of the ``obs`` dim for the rows of ``frame``: its index when that is
    safe to store and to align on (unique, integers or strings, not a MultiIndex), else
    ``0 .. n-1``."""
    index = frame.index
    n = len(index)
    if (isinstance(index, pd.MultiIndex) or not index.is_unique
            or not (pd.api.types.is_integer_dtype(index.dtype)
                    or pd.api.types.is_string_dtype(index.dtype))):
        return np.arange(n)
    values = index.to_numpy()
    if not pd.api.types.is_integer_dtype(index.dtype):
        if not all(isinstance(v, str) for v in values):
            return np.arange(n)
        values = values.astype(str)
    return values


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
    return xr.Dataset(data_vars, coords={OBS_DIM: obs_coords(df)})


def _json_scalar(v):
    if isinstance(v, np.generic):
        v = v.item()
    if not isinstance(v, str | int | float | bool):
        v = str(v)
    return v


def dataset_to_frame(ds) -> pd.DataFrame:
    """Decode :func:`frame_to_dataset`'s Dataset back into the data frame (its index from
    the ``obs`` coordinates)."""
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
    frame = pd.DataFrame(cols)
    if OBS_DIM in ds.coords:
        index = np.asarray(ds[OBS_DIM].values)
        if not np.array_equal(index, np.arange(len(frame))):  # the rows' own labels
            frame.index = pd.Index(index)
    return frame


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


def description_hashes(description) -> tuple[str, str]:
    """``(data hash, labels hash)`` of a model description's rows: of its predictor, group
    and weight columns, and of its labels as given (before thresholding or squeezing)."""
    data = description.data
    pred = [c for c in data.columns if c not in description.label_columns]
    return data_hash(data, pred), labels_hash(description.raw_labels(data))


def description_from_fit(fit, *, extra_namespace=None, check=True, source="the fit"):
    """Rebuild the :class:`~softbayes.terms.description.ModelDescription` of a fit from its
    stored training data and attrs.

    The design (stateful transforms, categorical levels, group levels), priors and options
    are those of the fit; no original data frame is needed. The attrs are untrusted input:
    they pass :meth:`FitAttrs.from_fit` (formulas through the sandbox) before anything is
    evaluated, and the formulas may call the functions of ``extra_namespace`` by name only.

    Parameters
    ----------
    fit : xarray.DataTree
    extra_namespace : dict, optional
        Functions the formula used beyond the defaults (not stored in the fit).
    check : bool, default True
        Compare the stored data's hashes with the fit's attrs.
    source : str, default "the fit"
        Named in errors (the file, quoted).

    Raises
    ------
    FitFileError
        (a ValueError) naming the attr, if one fails its check or one needed is missing;
        a ValueError if the fit is not a softbayes fit or its data do not match its hashes.
    """
    if attr_key("family") not in fit.attrs:
        raise ValueError(f"Not a softbayes fit: its attrs lack {attr_key('family')!r}.")
    if TRAINING_GROUP not in fit.children:
        raise ValueError(f"The fit has no {TRAINING_GROUP!r} group to rebuild the model.")
    attrs = FitAttrs.from_fit(fit, source=source, extra_names=set(extra_namespace or {}))
    attrs.require("formula", "options", "priors", source=source)
    options = attrs.options
    priors = {k: Prior(v["dist"], v.get("kwargs", {}), v.get("source", "user"))
              for k, v in attrs.priors.items()}
    own = {k: options[k] for k in family_class(attrs.family).option_names if k in options}
    description = describe_model(
        attrs.formula, dataset_to_frame(fit[TRAINING_GROUP]), likelihood=attrs.family,
        priors=priors, phi_formula=attrs.phi_formula or None, weights=options.get("weights"),
        options=own, extra_namespace=extra_namespace, quiet=True, untrusted=True,
        dtype=attrs.dtype or "float64",
    )
    if check and description_hashes(description) != (attrs.data_hash, attrs.labels_hash):
        raise ValueError(
            f"The training data stored in the fit does not match the fit's recorded hashes "
            f"({attr_key('data_hash')} / {attr_key('labels_hash')}): the file was modified or "
            "written by an incompatible version. Refit the model."
        )
    return description


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
        keyed without the ``softbayes_`` prefix (:meth:`FitAttrs.present`). Unknown
        ``softbayes_*`` attrs are left out, with a warning naming each.

    Raises
    ------
    FitFileError
        (a ValueError) naming ``source`` and the attr, e.g. a formula the sandbox refuses,
        a family softbayes does not know, malformed JSON.
    """
    return FitAttrs.from_fit(fit, source=source, extra_names=extra_names).present()


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
    where = repr(os.fspath(path))
    engine = "zarr" if _is_zarr(path) else None
    try:
        with xr.open_datatree(path, engine=engine) as tree:
            fit = tree.load().copy()
    except Exception as err:  # not netCDF/zarr, truncated, unreadable, malformed inside
        raise ValueError(
            f"{os.fspath(path)!r} cannot be read as a softbayes fit (a netCDF file or a zarr "
            f"store written by softbayes): {type(err).__name__}: {err}"
        ) from err
    if attr_key("family") not in fit.attrs:
        raise ValueError(f"{where} is not a softbayes fit (no {attr_key('family')!r} attribute).")
    validate_fit(fit, source=where, extra_names=set(extra_namespace or {}))
    for key in unknown_fit_attrs(fit.attrs):  # warned about: not carried any further
        del fit.attrs[key]
    if check:
        description_from_fit(fit, check=True, extra_namespace=extra_namespace)
    return fit
