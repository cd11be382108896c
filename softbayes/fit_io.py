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

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "TRAINING_GROUP",
    "data_hash",
    "dataset_to_frame",
    "frame_to_dataset",
    "load_fit",
    "save_fit",
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


def load_fit(path, *, check=True):
    """Read a fit written with ``fit.to_netcdf`` / ``fit.to_zarr`` (or :func:`save_fit`).

    Parameters
    ----------
    path : str or path-like
        A netCDF file, or a zarr store (a directory or a path ending in ``.zarr``).
    check : bool, default True
        Recompute the hashes of the stored training data and compare them with the fit's
        ``softbayes_data_hash`` / ``softbayes_labels_hash`` attrs.

    Returns
    -------
    xarray.DataTree
        Loaded into memory (the file is closed), ready for :func:`softbayes.predict`.
    """
    engine = "zarr" if _is_zarr(path) else None
    try:
        with xr.open_datatree(path, engine=engine) as tree:
            fit = tree.load().copy()
    except (ValueError, OSError, KeyError) as err:  # not netCDF/zarr, truncated, unreadable
        raise ValueError(
            f"{os.fspath(path)!r} cannot be read as a softbayes fit (a netCDF file or a zarr "
            f"store written by softbayes): {type(err).__name__}: {err}"
        ) from err
    if "softbayes_family" not in fit.attrs:
        raise ValueError(
            f"{os.fspath(path)!r} is not a softbayes fit (no 'softbayes_family' attribute)."
        )
    if check:
        from softbayes.model import Model

        Model.from_fit(fit, check=True)
    return fit
