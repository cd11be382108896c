r"""Model comparison that refuses what is not comparable: :func:`compare` and :class:`Comparison`.

ArviZ's ``compare`` ranks any models by ELPD as long as their numbers of observations match.
For soft labels that is not enough (see ``notes/soft-labels.md`` section 4):

* the ELPD of a *density* of the label (Continuous Bernoulli, Beta) and the ELPD of the
  weighted-Bernoulli cross-entropy (not a density of the label) or of a Bernoulli
  probability of thresholded labels are different kinds of numbers; since
  :math:`\log C(\lambda) \ge \log 2`, the Continuous Bernoulli "wins" a naive ELPD comparison
  with the weighted Bernoulli by at least 0.69 nats per observation whatever the fit;
* models must describe the same labels of the same observations.

:func:`compare` therefore

1. checks that all fits share the labels (``softbayes_labels_hash``), the number of
   observations and the values of the training columns they share, and raises an error
   naming the fits that differ;
2. builds one ELPD table (PSIS-LOO, exactly ``arviz.compare``) per *group* of fits whose
   observation models are comparable (:data:`ELPD_GROUPS`: each family declares its
   ``elpd_group``) and refuses a ranking across groups unless
   ``allow_cross_group_elpd=True`` (then the table is built and flagged);
3. scores every fit on one common scale: the leave-one-out predictive mean
   :math:`E[y_i \mid x_i, y_{-i}]` (PSIS weights from the fit's own pointwise log-likelihood,
   or K-fold refits) against the soft labels with the log score and the Brier score
   (:mod:`softbayes.analysis.scores`), with paired differences against the best fit and a binned
   calibration error;
4. diagnoses every fit (:func:`softbayes.diagnose_fit`) and collects plain warnings;
5. draws the figures (:mod:`softbayes.analysis.plots`) on request.

The package holds the fit records and guards (:mod:`.groups`), the PSIS-LOO and K-fold
estimates (:mod:`.cross_validation`), the result (:mod:`.result`) and the entry point
(:mod:`.compare_fits`).
"""

from softbayes.analysis.comparison.compare_fits import compare
from softbayes.analysis.comparison.groups import (
    CROSS_GROUP,
    ELPD_GROUPS,
    GROUP_DESCRIPTIONS,
    elpd_group,
)
from softbayes.analysis.comparison.result import Comparison

__all__ = [
    "CROSS_GROUP",
    "ELPD_GROUPS",
    "GROUP_DESCRIPTIONS",
    "Comparison",
    "compare",
    "elpd_group",
]
