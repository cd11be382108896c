"""A linear predictor of a model: its parameters, priors, PyMC graph and NumPy evaluation.

:class:`Predictor` wraps one :class:`~softbayes.terms.design.LinearDesign` (the formula
state) and knows everything that follows from it: the names of its parameters (Bambi's
names, see :mod:`softbayes.model`), their default priors and shapes, the coords of their
dims, the linear predictor as a PyTensor expression (:meth:`Predictor.build`) and on NumPy
posterior draws (:meth:`Predictor.evaluate`).

The predictor is built on the *centred* design ``X - means``: the sampled intercept
``Intercept_centered`` is the linear predictor at the training means, and the usual
intercept is :meth:`Predictor.uncentred_intercept`, written once for the PyTensor graph and
NumPy draws alike. Flattening posterior draws into vectors and back is
:class:`ParameterLayout` and :func:`posterior_draws`, also written once.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from softbayes.terms.design import LinearDesign
from softbayes.terms.priors import DEFAULT_SCALE, group_sd_prior, intercept_prior, slope_prior

__all__ = [
    "CLASS_DIM",
    "CLASS_REDUCED_DIM",
    "SAMPLE_DIMS",
    "ParameterLayout",
    "Predictor",
    "posterior_draws",
    "safe_name",
]

#: The label dim of multiclass families (one entry per class).
CLASS_DIM = "class"
#: The trailing dim of multiclass coefficients (classes 2..K; class 1 is the reference).
CLASS_REDUCED_DIM = "class_reduced"
#: The sample dims of a posterior.
SAMPLE_DIMS = ("chain", "draw")


def safe_name(name: str) -> str:
    """A variable name netCDF and zarr can store (``/`` is their group separator)."""
    return name.replace("/", "÷")


def posterior_draws(posterior, name, shape=None, dims=None) -> np.ndarray:
    """The draws of the posterior variable ``name`` as a ``(chain, draw, *shape)`` array.

    Parameters
    ----------
    posterior : xarray.Dataset
    name : str
    shape : tuple, optional
        The shape of one draw (default: the variable's own).
    dims : sequence of str, optional
        The order of the variable's other dims before reshaping (default: as stored).
    """
    da = posterior[name]
    if dims is None:
        dims = [d for d in da.dims if d not in SAMPLE_DIMS]
    v = np.asarray(da.transpose(*SAMPLE_DIMS, *dims).values, dtype=float)
    return v if shape is None else v.reshape(v.shape[:2] + tuple(shape))


@dataclass(frozen=True)
class ParameterLayout:
    """Named parameters of given shapes laid out end to end in one vector.

    The one place where parameter values are flattened (points of a PyMC model, posterior
    draws) and put back.
    """

    names: tuple
    shapes: tuple

    @classmethod
    def of_point(cls, point, names) -> ParameterLayout:
        """The layout of ``names`` with the shapes of their values in ``point``."""
        return cls(tuple(names), tuple(np.shape(point[n]) for n in names))

    @property
    def sizes(self) -> list[int]:
        return [int(np.prod(s)) for s in self.shapes]

    @property
    def size(self) -> int:
        """The length of the vector."""
        return int(sum(self.sizes))

    def ravel(self, point) -> np.ndarray:
        """The vector of ``point`` (a mapping name -> value)."""
        if not self.names:
            return np.zeros(0)
        return np.concatenate([np.ravel(point[n]) for n in self.names]).astype(float)

    def unravel(self, vec) -> dict:
        """``{name: value}`` from a vector (the inverse of :meth:`ravel`)."""
        out, i = {}, 0
        for n, s, k in zip(self.names, self.shapes, self.sizes, strict=True):
            out[n] = np.reshape(np.asarray(vec)[i:i + k], s)
            i += k
        return out

    def stack(self, posterior) -> np.ndarray:
        """The ``(chain, draw, size)`` matrix of the posterior draws of the parameters."""
        mats = [posterior_draws(posterior, n) for n in self.names]
        return np.concatenate([m.reshape((*m.shape[:2], -1)) for m in mats], axis=2)

    def unstack(self, posterior, mat):
        """A copy of ``posterior`` whose parameters hold the ``(chain, draw, size)``
        matrix ``mat`` (the inverse of :meth:`stack`)."""
        out = posterior.copy()
        i = 0
        for n, k in zip(self.names, self.sizes, strict=True):
            da = posterior[n]
            other = [d for d in da.dims if d not in SAMPLE_DIMS]
            t = da.transpose(*SAMPLE_DIMS, *other)
            vals = np.asarray(mat)[:, :, i:i + k].reshape(t.shape)
            out[n] = t.copy(data=vals).transpose(*da.dims)
            i += k
        return out


@dataclass(frozen=True, eq=False)
class Predictor:
    """One linear predictor: a :class:`LinearDesign`, its parameters, priors and math.

    Parameters
    ----------
    design : LinearDesign
        The right-hand side evaluated on the training rows (with its formula state).
    prefix : str, default ""
        Prefix of its parameter names and prior keys (``"phi_"`` for the precision).
    n_classes_reduced : int, optional
        ``K - 1`` for a multiclass family (every coefficient gets a trailing
        ``class_reduced`` dim), else None.
    intercept_mu, scale : float
        Location of the default intercept prior and the scale of the default priors
        (:mod:`softbayes.terms.priors`).
    """

    design: LinearDesign
    prefix: str = ""
    n_classes_reduced: int | None = None
    intercept_mu: float = 0.0
    scale: float = DEFAULT_SCALE

    @property
    def cls(self) -> tuple:
        """The trailing shape of every coefficient: ``(K - 1,)`` or ``()``."""
        return () if self.n_classes_reduced is None else (self.n_classes_reduced,)

    # -- names ------------------------------------------------------------------------------
    def key(self, term) -> str:
        """The prior key of ``term``."""
        return f"{self.prefix}{term}"

    def var(self, term) -> str:
        """The model variable of ``term`` (or of a name derived from it)."""
        return safe_name(f"{self.prefix}{term}")

    def dims(self, *dims) -> tuple:
        """``dims`` followed by the class dim of multiclass coefficients."""
        return tuple(dims) + ((CLASS_REDUCED_DIM,) if self.cls else ())

    def _term_shape(self, t):
        p = t.columns.stop - t.columns.start
        return p, ((p,) if p > 1 else ()) + self.cls

    def _term_dims(self, t):
        p = t.columns.stop - t.columns.start
        return self.dims(self.var(f"{t.name}_dim")) if p > 1 else self.dims()

    def _group_dims(self, g, q):
        fdim = self.var(f"{g.name}__factor_dim")
        edims = (self.var(f"{g.name}__expr_dim"),) if q > 1 else ()
        return fdim, edims, ((q,) if q > 1 else ()) + self.cls

    def entries(self) -> list[tuple]:
        """``(prior key, parameter name, default Prior, role, shape)`` for each prior."""
        d = self.design
        xc = d.X - d.means
        out = []
        if d.intercept:
            out.append((self.key("Intercept"), self.var("Intercept_centered"),
                        intercept_prior(self.intercept_mu, self.scale), "intercept (centred)",
                        self.cls))
        for t in d.common_terms:
            out.append((self.key(t.name), self.var(t.name),
                        slope_prior(xc[:, t.columns], self.scale), "slope",
                        self._term_shape(t)[1]))
        for g, (xe, _, _) in zip(d.group_terms, d.group_parts_train, strict=True):
            out.append((self.key(g.name), self.var(f"{g.name}_sigma"),
                        group_sd_prior(xe, self.scale), "group-level sd",
                        self._group_dims(g, xe.shape[1])[2]))
        return out

    def coords(self) -> dict:
        """The coords of the dims of its parameters."""
        d = self.design
        coords = {}
        for t in d.common_terms:
            if t.columns.stop - t.columns.start > 1:
                coords[self.var(f"{t.name}_dim")] = list(map(str, t.labels))
        for g in d.group_terms:
            coords[self.var(f"{g.name}__factor_dim")] = list(map(str, g.groups))
            if len(g.expr_labels) > 1:
                coords[self.var(f"{g.name}__expr_dim")] = list(map(str, g.expr_labels))
        return coords

    def data_names(self) -> dict:
        """Names of its data containers: ``{"X": ..., "Z:<term>": ..., "index:<term>": ...}``."""
        out = {"X": self.var("X__data")}
        for g in self.design.group_terms:
            out[f"Z:{g.name}"] = self.var(f"{g.name}__Z_data")
            out[f"index:{g.name}"] = self.var(f"{g.name}__index_data")
        return out

    def population_layout(self) -> tuple[ParameterLayout, np.ndarray]:
        """The population-level coefficients (centred intercept first, then the terms) and
        their design ``Z`` (the centred ``X``, its intercept column of ones), so that the
        linear predictor without group-level terms is ``Z @ theta``."""
        d = self.design
        names, shapes = [], []
        if d.intercept:
            names.append(self.var("Intercept_centered"))
            shapes.append(self.cls)
        for t in d.common_terms:
            names.append(self.var(t.name))
            shapes.append(self._term_shape(t)[1])
        return ParameterLayout(tuple(names), tuple(shapes)), d.X - d.means

    # -- the intercept ----------------------------------------------------------------------
    def uncentred_intercept(self, centred, slopes):
        """The usual intercept ``centred - sum_t means_t . beta_t``.

        ``slopes`` holds one coefficient array per population-level term, shaped
        ``(..., p_t, *cls)``; PyTensor variables and NumPy draws alike.
        """
        k = len(self.cls)
        shift = 0.0
        for t, beta in zip(self.design.common_terms, slopes, strict=True):
            means = self.design.means[t.columns].reshape((-1,) + (1,) * k)
            shift = shift + (beta * means).sum(axis=-(k + 1))
        return centred - shift

    def uncentre(self, posterior):
        """A copy of ``posterior`` whose ``Intercept`` is recomputed from its draws of the
        centred intercept and the slopes (after the draws were changed)."""
        if not self.design.intercept or self.var("Intercept") not in posterior:
            return posterior
        a = posterior_draws(posterior, self.var("Intercept_centered"), self.cls, self.dims())
        slopes = [self.slope_draws(posterior, t) for t in self.design.common_terms]
        out = posterior.copy()
        name = self.var("Intercept")
        dims = (*SAMPLE_DIMS, *self.dims())
        out[name] = (dims, self.uncentred_intercept(a, slopes))
        out[name] = out[name].transpose(*posterior[name].dims)
        return out

    def slope_draws(self, posterior, t) -> np.ndarray:
        """The draws of the population-level term ``t``: ``(chain, draw, p, *cls)``."""
        p, _ = self._term_shape(t)
        return posterior_draws(posterior, self.var(t.name), (p, *self.cls), self._term_dims(t))

    # -- PyMC graph -------------------------------------------------------------------------
    def fusable(self) -> bool:
        """Whether :meth:`build` can hand the likelihood a fused GLM kernel: a single linear
        predictor ``X @ theta`` (no group-level terms, not multiclass)."""
        d = self.design
        return not self.cls and not d.group_terms and d.X.shape[1] > 0

    def build(self, priors, *, fused=False, dtype="float64"):
        """The linear predictor as a PyTensor expression (in a model context), and its GLM
        form.

        Returns ``(eta, glm)``: ``eta`` is (n,) or (n, K-1); ``glm`` is ``(X, theta)`` with
        ``eta = X @ theta`` when ``fused`` and :meth:`fusable` (else None), for the fused
        kernels of :mod:`softbayes.ops` (the data container already holds the centred
        design with the intercept's column of ones: one contiguous matrix, read once per
        evaluation). ``priors`` maps prior keys to :class:`~softbayes.terms.priors.Prior`;
        ``dtype`` is the storage dtype of that container (the centred design, rounded).
        """
        d = self.design
        fused = fused and self.fusable()
        # Data containers (pm.Data, flexible number of rows) so that a compiled model can be
        # refitted on new rows (softbayes.backend.refit); names from data_names().
        names = self.data_names()
        with pytensor.config.change_flags(floatX=dtype):  # pm.Data stores floats as floatX
            xc = pm.Data(names["X"], np.ascontiguousarray(d.X - d.means, dtype=dtype))
        n = xc.shape[0]
        eta = pt.zeros((n, *self.cls))
        theta, slopes = [], []
        if d.intercept:
            a = priors[self.key("Intercept")].build(
                self.var("Intercept_centered"), shape=self.cls, dims=self.dims()
            )
            eta = eta + a
            theta.append((0, pt.reshape(a, (1,))))
        for t in d.common_terms:
            p, shape = self._term_shape(t)
            beta = priors[self.key(t.name)].build(self.var(t.name), shape=shape,
                                                  dims=self._term_dims(t))
            beta = pt.reshape(beta, (p, *self.cls))
            theta.append((t.columns.start, beta))
            slopes.append(beta)
            eta = eta + pt.tensordot(xc[:, t.columns], beta, axes=[[1], [0]])
        if d.intercept:
            pm.Deterministic(self.var("Intercept"), self.uncentred_intercept(a, slopes),
                             dims=self.dims())
        if fused:
            # theta in the column order of X (the terms' column blocks tile it)
            parts = [b for _, b in sorted(theta, key=lambda sb: sb[0])]
            theta = pt.concatenate(parts) if len(parts) > 1 else parts[0]
            # eta is then only evaluated by code that asks for it: the compiled logp reads
            # the fused node, and unused nodes are not computed.
            return pt.dot(xc, theta), (xc, theta)
        for g, (xe, idx, _) in zip(d.group_terms, d.group_parts_train, strict=True):
            eta = eta + self._build_group(priors, g, xe, idx, n)
        return eta, None

    def _build_group(self, priors, g, xe, idx, n):
        """The non-centred contribution of the group-level term ``g`` to the predictor."""
        names = self.data_names()
        q = xe.shape[1]
        fdim, edims, eshape = self._group_dims(g, q)
        sigma = priors[self.key(g.name)].build(
            self.var(f"{g.name}_sigma"), shape=eshape, dims=self.dims(*edims)
        )
        n_groups = len(g.groups)
        offset = pm.Normal(
            self.var(f"{g.name}_offset"), 0.0, 1.0, shape=(n_groups, *eshape),
            dims=self.dims(fdim, *edims),
        )
        b = pm.Deterministic(self.var(g.name), sigma * offset, dims=self.dims(fdim, *edims))
        b = pt.reshape(b, (n_groups, q, *self.cls))
        xe_d = pm.Data(names[f"Z:{g.name}"], xe)
        idx_d = pm.Data(names[f"index:{g.name}"], np.asarray(idx, dtype=np.int64))
        xe_t = pt.reshape(xe_d, (n, q) + (1,) * len(self.cls))
        return pt.sum(xe_t * b[idx_d], axis=1)

    # -- new rows ---------------------------------------------------------------------------
    def on_rows(self, frame) -> Predictor:
        """This predictor on the rows of ``frame``, evaluated with the training formula
        state (levels, ``scale()`` parameters, centring means); for refits.

        Raises a ValueError if ``frame`` holds group levels unseen in training (a refit
        keeps the parameters of the training levels).
        """
        design = self.design
        new = copy.copy(design)
        new.X = design.common_matrix(frame)
        new.n = len(frame)
        parts = design.group_parts(frame) if design.group_terms else []
        for g, (_, _, levels) in zip(design.group_terms, parts, strict=True):
            if levels:
                raise ValueError(
                    f"set_data: group-level term {g.name!r} has {len(levels)} level(s) not in "
                    f"the model's data ({levels[:5]}); a refit keeps the model's parameters. "
                    "Build a new softbayes.Model for data with new groups."
                )
        new.group_parts_train = parts
        return dataclasses.replace(self, design=new)

    # -- NumPy on posterior draws -----------------------------------------------------------
    def evaluate(self, posterior, data, *, new_groups="error", rng=None) -> np.ndarray:
        """The linear predictor on ``data`` for every draw: ``(chain, draw, n[, K-1])``.

        ``new_groups`` says what a group level unseen in training gets: ``"error"``,
        ``"sample"`` (an effect drawn from the fitted group distribution, with ``rng``) or
        ``"zero"``.
        """
        d = self.design
        xc = d.common_matrix(data) - d.means
        c, dr = posterior.sizes["chain"], posterior.sizes["draw"]
        eta = np.zeros((c, dr, len(data), *self.cls))
        if d.intercept:
            a = posterior_draws(posterior, self.var("Intercept_centered"), self.cls,
                                self.dims())
            eta += a[:, :, None]
        for t in d.common_terms:
            eta += np.einsum("np,cdp...->cdn...", xc[:, t.columns],
                             self.slope_draws(posterior, t))
        parts = d.group_parts(data) if d.group_terms else []
        for g, part in zip(d.group_terms, parts, strict=True):
            eta += self._group_effect(posterior, g, part, new_groups, rng)
        return eta

    def _group_effect(self, posterior, g, part, new_groups, rng):
        xe, idx, new = part
        q = xe.shape[1]
        fdim, edims, _ = self._group_dims(g, q)
        n_groups = len(g.groups)
        b = posterior_draws(posterior, self.var(g.name), (n_groups, q, *self.cls),
                            self.dims(fdim, *edims))
        if new:
            if new_groups == "error":
                raise ValueError(
                    f"Group-level term {g.name!r}: {len(new)} level(s) not seen in "
                    f"training ({new[:5]}). Pass new_groups='sample' to draw their "
                    "effects from the fitted group distribution, or new_groups='zero' "
                    "to predict them at the population level (effect 0)."
                )
            extra = np.zeros((*b.shape[:2], len(new), q, *self.cls))
            if new_groups == "sample":
                sigma = posterior_draws(posterior, self.var(f"{g.name}_sigma"),
                                        (q, *self.cls), self.dims(*edims))
                extra = rng.standard_normal(extra.shape) * sigma[:, :, None]
            elif new_groups != "zero":
                raise ValueError(
                    f"new_groups must be 'error', 'sample' or 'zero', got {new_groups!r}."
                )
            b = np.concatenate([b, extra], axis=2)
        xe_b = xe.reshape((len(xe), q) + (1,) * len(self.cls))
        return np.sum(xe_b * b[:, :, idx], axis=3)
