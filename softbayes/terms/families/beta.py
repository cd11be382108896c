"""The Beta family: mean-precision Beta regression of soft labels strictly inside (0, 1)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special as _sp

from softbayes.math.xp import ops
from softbayes.terms.families.base import DENSITY_GROUP_DESCRIPTION, Family, row_summary

__all__ = ["BetaFamily"]


def _gammaln(x):
    return pt.gammaln(x) if ops(x).symbolic else _sp.gammaln(x)


def _beta_shapes(eta, phi):
    """``(mu phi, (1 - mu) phi)`` for NumPy's beta sampler, never exactly 0.

    ``1 - mu`` is ``sigmoid(-eta)`` (``1 - sigmoid(eta)`` is 0 for eta > 37, and NumPy's
    sampler refuses a shape of 0); a shape that underflows is raised to the smallest normal
    double, whose draws are the limit (0 or 1).
    """
    tiny = np.finfo(np.float64).tiny
    return (np.maximum(_sp.expit(eta) * phi, tiny), np.maximum(_sp.expit(-eta) * phi, tiny))


class BetaFamily(Family):
    r"""Mean-precision Beta regression: ``y ~ Beta(mu phi, (1 - mu) phi)``, ``mu = sigmoid(eta)``.

    The precision ``phi`` is a constant or has its own formula (log link). Labels must lie
    strictly inside (0, 1): exact 0s and 1s are an error unless ``squeeze=True``, which
    applies the Smithson--Verkuilen (2006) transformation ``(y (n - 1) + 1/2) / n``.
    """

    name = "beta"
    parameters = ("eta", "phi")
    option_names = ("squeeze",)
    elpd_group = "density"
    elpd_group_description = DENSITY_GROUP_DESCRIPTION
    squeeze_note = (
        "{n} labels at exactly 0 or 1 were squeezed (Smithson-Verkuilen, (y(n-1)+1/2)/n) "
        "for the Beta density."
    )

    def __init__(self, squeeze=False):
        self.squeeze = bool(squeeze)

    def transforms_labels(self) -> bool:
        return self.squeeze

    def label_log_jacobian(self, n_train: int, n_columns: int = 1) -> float:
        # z = (y (n - 1) + 1/2) / n: the density of y is p_z(z) |dz/dy|, dz/dy = (n - 1) / n
        return float(np.log((n_train - 1) / n_train)) if self.squeeze else 0.0

    def prepare_labels(self, labels, *, name="labels", index=None, n_ref=None):
        lab, info = super().prepare_labels(labels, name=name, index=index)
        n = lab.shape[0] if n_ref is None else int(n_ref)
        edge = (lab == 0.0) | (lab == 1.0)
        if edge.any() and not self.squeeze:
            count, shown = row_summary(edge, index)
            n0, n1 = int((lab == 0.0).sum()), int((lab == 1.0).sum())
            raise ValueError(
                f"{name}: {count} of {lab.shape[0]} labels are exactly 0 or 1 ({n0} zeros, "
                f"{n1} ones; index {shown}), where the Beta density is 0 or infinite. Either pass "
                "squeeze=True to apply the Smithson-Verkuilen squeeze (y(n-1)+1/2)/n "
                "(recorded in the fit's attrs), or use a family that allows 0 and 1: "
                "likelihood='continuous_bernoulli' or 'weighted_bernoulli'."
            )
        info = {"squeeze": int(self.squeeze), "n_squeezed": int(edge.sum()) if self.squeeze else 0}
        if self.squeeze:
            lab = (lab * (n - 1) + 0.5) / n
        return lab, info

    def logp(self, labels, *, weights=None, eta, phi):
        xp = ops(labels, eta, phi)
        a = xp.sigmoid(eta) * phi
        b = xp.sigmoid(-eta) * phi  # not (1 - mu) phi: that cancels to 0 for eta > 37
        return (
            _gammaln(phi) - _gammaln(a) - _gammaln(b)
            + (a - 1.0) * xp.log(labels) + (b - 1.0) * xp.log1p(-labels)
        )

    def mean(self, *, eta, phi=None):
        return ops(eta).sigmoid(eta)

    def draws(self, rng, *, eta, phi):
        eta, phi = np.broadcast_arrays(eta, phi)
        return rng.beta(*_beta_shapes(eta, phi))

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta, phi):
        family = self

        def logp(value, eta, phi):
            return family.logp(value, eta=eta, phi=phi)

        def random(eta, phi, rng=None, size=None):
            return rng.beta(*_beta_shapes(eta, phi), size=size)

        eta = pt.as_tensor_variable(eta)
        phi = pt.as_tensor_variable(phi)
        return pm.CustomDist(
            name, eta, phi, logp=logp, random=random, observed=labels, dims=dims,
            signature="(),()->()",
        )
