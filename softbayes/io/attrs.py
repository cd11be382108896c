"""The root ``softbayes_*`` attrs of a fit: one dataclass, how it is written, read and checked.

Every ``softbayes_*`` key of a fit is a field of :class:`FitAttrs` and is written
(:meth:`FitAttrs.to_attrs`) and read (:meth:`FitAttrs.from_fit`) here and nowhere else. The
keys, and what :mod:`softbayes.model` writes into them, are listed in that module's docstring;
the calibration (:mod:`softbayes.backend.calibration`), the approximations
(:mod:`softbayes.backend.approx`) and the command line add the others.

A fit file is untrusted input (it may come from anyone): every attr softbayes reads is
checked on reading, before anything is built from it -- its type, the shape of its JSON,
formulas through the sandbox (:func:`softbayes.terms.sandbox.check_formula`), and the attrs
of the stored training data. Nothing is unpickled, evaluated or imported by a name read from
a file.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from softbayes.terms.families import FAMILIES, family_names
from softbayes.terms.sandbox import FormulaError, check_formula

__all__ = [
    "ATTR_PREFIX",
    "FIT_ATTRS",
    "FitAttrs",
    "FitFileError",
    "attr_key",
    "check_training_data",
    "unknown_fit_attrs",
]

#: The prefix of every fit attr softbayes writes.
ATTR_PREFIX = "softbayes_"
#: The group of a fit that holds its training data (see :mod:`softbayes.io.fits`).
TRAINING_GROUP = "training_data"
# characters of a text attr (formulas are capped lower by the sandbox), of a JSON attr (a
# sandwich covariance can be large), of a column name, a prior's term or its source
_MAX_TEXT, _MAX_JSON, _MAX_NAME = 100_000, 50_000_000, 1_000
_HEX64 = re.compile(r"[0-9a-f]{64}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DTYPE = re.compile(r"[A-Za-z0-9_\[\], :]{1,64}")
_COLUMN_KINDS = ("categorical", "string", "bool", "numeric")


def attr_key(name: str) -> str:
    """The attr key of the field ``name`` of :class:`FitAttrs` (``"softbayes_" + name``)."""
    return ATTR_PREFIX + name


class FitFileError(ValueError):
    """A fit whose attrs cannot be used; the message names the file (or fit) and the attr.

    Its attributes: ``source`` (the file, quoted, or ``"the fit"`` for a fit in memory),
    ``key`` (the attr, e.g. ``"softbayes_formula"``) and ``reason``.
    """

    def __init__(self, source, key, reason):
        self.source = source
        self.key = key
        self.reason = reason
        super().__init__(f"{source}: attr {key!r}: {reason}")


class _Bad(Exception):
    """Why one attr is refused (turned into a :class:`FitFileError` naming it)."""


# --------------------------------------------------------------------------- value checks
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


def _text(v, limit=_MAX_TEXT):
    v = _plain(v)
    if not isinstance(v, str):
        raise _Bad(f"expected text, got {type(v).__name__}.")
    if len(v) > limit:
        raise _Bad(f"text longer than {limit} characters.")
    if "\x00" in v:
        raise _Bad("the text holds a NUL character.")
    return v


def _short(v):  # a version, a sampler's name, a cache key
    return _text(v, 200)


def _choice(*allowed):
    def check(v):
        v = _text(v, 100)
        if v not in allowed:
            raise _Bad(f"{v!r} is not one of {', '.join(allowed)}.")
        return v

    return check


def _family(v):
    return _choice(*family_names())(v)


def _integer(v):
    v = _plain(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad(f"expected an integer, got {type(v).__name__} {v!r:.50}.")
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
        raise _Bad(f"expected 0 or 1, got {type(v).__name__} {v!r:.50}.")
    return v


def _number(v):
    v = _plain(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad(f"expected a number, got {type(v).__name__} {v!r:.50}.")
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


def _family_option_names() -> list[str]:
    """The options of all families (the keys ``softbayes_options`` may hold besides
    ``weights``), in registry order."""
    names = []
    for cls in FAMILIES.values():
        names += [k for k in cls.option_names if k not in names]
    return names


def _options(v):
    value = _json(v)
    if not isinstance(value, dict):
        raise _Bad("expected a JSON object of family options.")
    allowed = ["weights", *_family_option_names()]
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise _Bad(f"unknown option(s) {unknown}; expected {', '.join(allowed)}.")
    w = value.get("weights")
    if w is not None and not (isinstance(w, str) and 0 < len(w) <= _MAX_NAME):
        raise _Bad("option 'weights' must be a column name or null.")
    for key in allowed[1:]:
        if key in value:  # a family option is also recorded as an attr of its own: same check
            FIT_ATTRS[key](value[key])
    return value


def _finite_numbers(v) -> bool:
    if isinstance(v, list):
        return all(_finite_numbers(x) for x in v)
    return isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)


def _prior(term, p):
    if not (0 < len(term) <= _MAX_NAME) or "\x00" in term:
        raise _Bad(f"prior term {term[:50]!r} is not a term name.")
    if not isinstance(p, dict) or not set(p) <= {"dist", "kwargs", "source"}:
        raise _Bad(f"prior of {term!r}: expected an object with keys dist, kwargs, source.")
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
            raise _Bad(f"prior of {term!r}: parameter {k!r} must be a finite number or a list "
                       "of finite numbers.")
    src = p.get("source", "user")
    if not (isinstance(src, str) and len(src) <= _MAX_NAME):
        raise _Bad(f"prior of {term!r}: 'source' must be a short text.")


def _priors(v):
    value = _json(v)
    if not isinstance(value, dict):
        raise _Bad("expected a JSON object {term: {dist, kwargs, source}}.")
    for term, p in value.items():
        _prior(term, p)
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


_ll_kind = _choice("cross_entropy", "density", "probability")
_method = _choice("nuts", "laplace", "advi", "pathfinder")
_calibration = _choice("none", "dispersion", "sandwich")
_kernel = _choice("fused", "graph")


def _formula(v):
    return _text(v)  # and the sandbox, in FitAttrs.from_attrs (it needs the caller's names)


# --------------------------------------------------------------------------- the dataclass
def _meta(check, kind="text"):
    """Metadata of a field of :class:`FitAttrs`: ``check`` validates and decodes the stored
    value; ``kind`` (``"text"``, ``"int"``, ``"float"``, ``"json"``) says how it is written."""
    return {"check": check, "kind": kind}


@dataclass(frozen=True)
class FitAttrs:
    """The ``softbayes_*`` root attrs of a fit, one typed field per key (``None``: absent).

    JSON attrs (``label_columns``, ``options``, ``priors``, ``sandwich_*``) hold the decoded
    Python values; :meth:`to_attrs` encodes them. What each key means is documented in
    :mod:`softbayes.model` (the attrs of every fit), :mod:`softbayes.backend.calibration`
    (``calibration``, ``dispersion*``, ``learning_rate``, ``sandwich_*``) and
    :mod:`softbayes.backend.approx` (``method``, ``approx_seconds``, ``optimizer_*``,
    ``pathfinder_*``, ``advi_*``, ``log_likelihood_draws``).
    """

    version: str | None = field(default=None, metadata=_meta(_short))
    family: str | None = field(default=None, metadata=_meta(_family))
    formula: str | None = field(default=None, metadata=_meta(_formula))
    phi_formula: str | None = field(default=None, metadata=_meta(_formula))
    label_columns: list | None = field(default=None, metadata=_meta(_label_columns, "json"))
    options: dict | None = field(default=None, metadata=_meta(_options, "json"))
    priors: dict | None = field(default=None, metadata=_meta(_priors, "json"))
    data_hash: str | None = field(default=None, metadata=_meta(_hex64))
    labels_hash: str | None = field(default=None, metadata=_meta(_hex64))
    n_obs: int | None = field(default=None, metadata=_meta(_count, "int"))
    log_likelihood_var: str | None = field(default=None, metadata=_meta(_identifier))
    log_likelihood_kind: str | None = field(default=None, metadata=_meta(_ll_kind))
    sampler: str | None = field(default=None, metadata=_meta(_short))
    backend: str | None = field(default=None, metadata=_meta(_choice("jax", "numba")))
    random_seed: int | None = field(default=None, metadata=_meta(_integer, "int"))
    draws: int | None = field(default=None, metadata=_meta(_count, "int"))
    tune: int | None = field(default=None, metadata=_meta(_count, "int"))
    chains: int | None = field(default=None, metadata=_meta(_count, "int"))
    likelihood_kernel: str | None = field(default=None, metadata=_meta(_kernel))
    dtype: str | None = field(default=None, metadata=_meta(_choice("float64", "float32")))
    threshold: float | None = field(default=None, metadata=_meta(_open_unit, "float"))
    n_thresholded: int | None = field(default=None, metadata=_meta(_count, "int"))
    squeeze: int | None = field(default=None, metadata=_meta(_flag, "int"))
    n_squeezed: int | None = field(default=None, metadata=_meta(_count, "int"))
    method: str | None = field(default=None, metadata=_meta(_method))
    calibration: str | None = field(default=None, metadata=_meta(_calibration))
    dispersion: float | None = field(default=None, metadata=_meta(_number, "float"))
    dispersion_df: int | None = field(default=None, metadata=_meta(_integer, "int"))
    learning_rate: float | None = field(default=None, metadata=_meta(_number, "float"))
    sandwich_adjustment: list | None = field(default=None, metadata=_meta(_numbers, "json"))
    sandwich_mode: list | None = field(default=None, metadata=_meta(_numbers, "json"))
    sandwich_covariance: list | None = field(default=None, metadata=_meta(_numbers, "json"))
    sandwich_parameters: list | None = field(default=None, metadata=_meta(_name_list, "json"))
    approx_seconds: float | None = field(default=None, metadata=_meta(_number, "float"))
    log_likelihood_draws: int | None = field(default=None, metadata=_meta(_count, "int"))
    optimizer_iterations: int | None = field(default=None, metadata=_meta(_count, "int"))
    optimizer_success: int | None = field(default=None, metadata=_meta(_flag, "int"))
    optimizer_message: str | None = field(default=None, metadata=_meta(_text))
    mode_seconds: float | None = field(default=None, metadata=_meta(_number, "float"))
    pathfinder_iterate: int | None = field(default=None, metadata=_meta(_integer, "int"))
    pathfinder_path_length: int | None = field(default=None, metadata=_meta(_count, "int"))
    pathfinder_elbo: float | None = field(default=None, metadata=_meta(_number, "float"))
    pathfinder_khat: float | None = field(default=None, metadata=_meta(_number, "float"))
    pathfinder_psis_resample: int | None = field(default=None, metadata=_meta(_flag, "int"))
    pathfinder_seconds: float | None = field(default=None, metadata=_meta(_number, "float"))
    advi_learning_rate: float | None = field(default=None, metadata=_meta(_number, "float"))
    advi_iterations: int | None = field(default=None, metadata=_meta(_count, "int"))
    advi_batch_size: int | None = field(default=None, metadata=_meta(_count, "int"))
    advi_final_loss: float | None = field(default=None, metadata=_meta(_number, "float"))
    cli_fit_seconds: float | None = field(default=None, metadata=_meta(_number, "float"))
    cli_cache_key: str | None = field(default=None, metadata=_meta(_short))

    # -- writing ----------------------------------------------------------------------------
    def to_attrs(self) -> dict:
        """``{"softbayes_<field>": value}`` for every field that is set, JSON-encoded where
        the field is JSON: strings and numbers only, so netCDF and zarr store them."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            kind = f.metadata["kind"]
            if kind == "json":
                v = json.dumps(np.asarray(v).tolist() if isinstance(v, np.ndarray) else v,
                               sort_keys=True)
            elif kind in ("int", "float"):
                v = int(v) if kind == "int" else float(v)
            else:
                v = str(v)
            out[attr_key(f.name)] = v
        return out

    def write(self, fit):
        """Set the fields that are set as attrs of ``fit`` (others are left as they are)."""
        fit.attrs.update(self.to_attrs())
        return fit

    def replace(self, **changes) -> FitAttrs:
        """A copy with ``changes`` (field names; a ``TypeError`` for an unknown one)."""
        return dataclasses.replace(self, **changes)

    def present(self) -> dict:
        """``{field: value}`` of the fields that are set."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}

    # -- reading ----------------------------------------------------------------------------
    @classmethod
    def from_attrs(cls, attrs, *, source="the fit", extra_names=(), warn_unknown=True
                   ) -> FitAttrs:
        """Check and decode the ``softbayes_*`` keys of ``attrs`` (a fit's root attrs).

        Parameters
        ----------
        attrs : mapping
        source : str, default "the fit"
            Named in errors and warnings (the file, quoted).
        extra_names : iterable of str, optional
            Functions the caller passes in Python (``extra_namespace=``) that the stored
            formulas may call by name.
        warn_unknown : bool, default True
            Warn about each ``softbayes_*`` key that is not a field (it is ignored).

        Raises
        ------
        FitFileError
            (a ValueError) naming ``source`` and the attr, e.g. a formula the sandbox
            refuses, a family softbayes does not know, malformed JSON.
        """
        attrs = dict(attrs or {})
        if warn_unknown:
            for key in unknown_fit_attrs(attrs):
                warnings.warn(f"{source}: unknown attr {key!r} is ignored (not written by this "
                              "softbayes version).", UserWarning, stacklevel=3)
        values = {}
        for name, check in FIT_ATTRS.items():
            key = attr_key(name)
            if key not in attrs:
                continue
            try:
                values[name] = check(attrs[key])
                if check is _formula and (values[name] or name == "formula"):
                    check_formula(values[name], extra_names=extra_names,
                                  rhs_only=name == "phi_formula")
            except (_Bad, FormulaError) as err:
                raise FitFileError(source, key, str(err)) from None
        out = cls(**values)
        out._check_phi_formula(source)
        return out

    @classmethod
    def from_fit(cls, fit, *, source="the fit", extra_names=(), warn_unknown=True) -> FitAttrs:
        """:meth:`from_attrs` of ``fit.attrs``, and the attrs of its training data checked
        (:func:`check_training_data`)."""
        out = cls.from_attrs(getattr(fit, "attrs", None), source=source,
                             extra_names=extra_names, warn_unknown=warn_unknown)
        check_training_data(fit, source)
        return out

    def _check_phi_formula(self, source):
        if self.phi_formula and self.family and "phi_formula" not in FAMILIES[
                self.family].model_options():
            owners = [n for n, c in FAMILIES.items() if "phi_formula" in c.model_options()]
            raise FitFileError(source, attr_key("phi_formula"),
                               "a phi formula belongs only to a family with a precision phi "
                               f"({', '.join(owners)}), not {self.family!r}.")

    def require(self, *names, source="the fit", why="the model cannot be rebuilt without it."):
        """Raise a :class:`FitFileError` for the first of ``names`` that is not set."""
        for name in names:
            if getattr(self, name) is None:
                raise FitFileError(source, attr_key(name), f"missing: {why}")
        return self


#: The fields of :class:`FitAttrs` (the ``softbayes_*`` keys without the prefix) with the
#: check that validates and decodes each.
FIT_ATTRS = {f.name: f.metadata["check"] for f in dataclasses.fields(FitAttrs)}


def unknown_fit_attrs(attrs) -> list[str]:
    """The ``softbayes_*`` keys of ``attrs`` that softbayes does not know (they are ignored)."""
    return [k for k in attrs if isinstance(k, str) and k.startswith(ATTR_PREFIX)
            and k[len(ATTR_PREFIX):] not in FIT_ATTRS]


def check_training_data(fit, source="the fit"):
    """Check the attrs of the variables of the fit's training-data group (their column
    names, kinds, dtypes and categories); a :class:`FitFileError` naming the variable."""
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
