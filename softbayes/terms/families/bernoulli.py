"""The Bernoulli family: the hard-label baseline, soft labels thresholded to 0/1."""

from __future__ import annotations

import pymc as pm

from softbayes.math.soft_labels import soft_bernoulli_logp
from softbayes.math.xp import ops
from softbayes.terms.families.base import Family, hard_label_draws

__all__ = ["BernoulliFamily"]


class BernoulliFamily(Family):
    """Hard-label baseline: labels thresholded at ``threshold`` (``l >= threshold`` -> 1).

    The number of labels the cut changes (those not already 0 or 1) is reported in a
    warning and recorded in the fit's attrs.
    """

    name = "bernoulli"
    log_likelihood_kind = "probability"
    predictive_check = "reliability"  # draws are hard outcomes, not soft labels
    option_names = ("threshold",)
    elpd_group = "bernoulli"
    elpd_group_description = "Bernoulli probabilities of the labels thresholded to 0/1"
    comparison_note = (
        "The hard-label Bernoulli baseline sees thresholded labels: the information in the "
        "soft labels is discarded, so its ELPD (a probability of 0/1 labels) compares with "
        "nothing else here."
    )

    def __init__(self, threshold=0.5):
        threshold = float(threshold)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}.")
        self.threshold = threshold

    def comparison_group(self) -> str:
        # different thresholds make different hard labels
        if self.threshold != 0.5:
            return f"bernoulli (threshold {self.threshold:g})"
        return self.elpd_group

    def transforms_labels(self) -> bool:
        return True

    def prepare_labels(self, labels, *, name="labels", index=None, n_ref=None):
        lab, _ = super().prepare_labels(labels, name=name, index=index)
        soft = (lab != 0.0) & (lab != 1.0)
        hard = (lab >= self.threshold).astype(float)
        n_changed = int(soft.sum())
        info = {"threshold": self.threshold, "n_thresholded": n_changed}
        if n_changed:
            info["warning"] = (
                f"bernoulli family: {n_changed} of {lab.shape[0]} labels in {name} are soft "
                f"(not 0 or 1) and were thresholded at {self.threshold:g} "
                f"(label >= {self.threshold:g} -> 1); {int(hard[soft].sum())} became 1 and "
                f"{int(n_changed - hard[soft].sum())} became 0. The information in the soft "
                "labels is discarded; recorded in the fit's attrs as softbayes_n_thresholded."
            )
        return hard, info

    def logp(self, labels, *, weights=None, eta):
        return soft_bernoulli_logp(labels, eta)

    def mean(self, *, eta):
        return ops(eta).sigmoid(eta)

    def draws(self, rng, *, eta):
        return hard_label_draws(rng, eta)

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta):
        return pm.Bernoulli(name, logit_p=eta, observed=labels, dims=dims)
