"""Analysis specs: one TOML file describes one analysis (data, candidate models, sampler).

A spec is *data*: nothing in it is executed as code. Formulas may only call an allow-list of
functions (formulae's transforms such as ``scale``, ``C``, ``poly``, ``bs`` and the NumPy
functions softbayes provides, e.g. ``log``), and data paths must stay inside the spec's folder.

Format (``models/<name>.toml``; every key but ``[data]`` and ``[[models]]`` is optional)::

    title = "STAR98: share of students above the national median"
    description = "Free text shown at the top of the report."
    seed = 20260101                      # random seed of every fit

    [data]
    builtin = "star98"                   # a built-in data set (softbayes datasets), or
    # path = "data/shares.csv"           # a CSV or Parquet file relative to this spec
    labels = "share_above"               # label column; K classes: ["p_a", "p_b", "p_c"]
    # weights = "n_raters"               # row weights, used by the families that take them
    # trials = "n_annotators"            # labels are counts k of these m trials: the models'
                                         # response is p(k, m); beta_binomial and binomial
                                         # model the counts, the others see k / m
    # sep = ";"                          # CSV separator (default ","; also ";", "\t", "|",
                                         # " ", ":" or "\\s+"; never a regular expression)

    [sampler]                            # defaults: 1000 draws, 1000 tune, 4 chains, nutpie
    draws = 500
    tune = 500
    chains = 2
    # sampler = "nutpie"                 # or "pymc", "numpyro", "blackjax"
    # target_accept = 0.9

    [compare]                            # see softbayes.compare
    # scores = ["log", "brier"]
    # kfold_fallback = "all"             # "all", "fit" or "none" when PSIS-LOO is unreliable
    # k = 10
    # kfold_group = "annotator_pool"     # K-fold holds out whole groups of this column
    # n_bins = 10

    [compute]                            # where the fits run (default: this process)
    # workers = 2                        # local Dask worker processes (1 to 64); a scheduler
                                         # address only from --scheduler, never a spec

    [[models]]                           # one table per candidate model
    name = "Continuous Bernoulli"
    likelihood = "continuous_bernoulli"  # weighted_bernoulli, continuous_bernoulli, beta,
                                         # bernoulli, soft_categorical, beta_binomial,
                                         # binomial, ... (softbayes.terms.families)
    formula = "~ scale(LOWINC) + scale(PERASIAN)"   # left-hand side from [data] labels
    # description = "..."
    # [models.priors]                    # overrides, see softbayes.terms.priors
    # "scale(LOWINC)" = { dist = "Normal", mu = 0, sigma = 1 }
    # [models.options]                   # family options
    # squeeze = true                     # beta: Smithson-Verkuilen squeeze of 0/1 labels;
                                         # dirichlet: (y(n-1)+1/K)/n of zero shares
    # threshold = 0.5                    # bernoulli: cut of the soft labels
    # phi_formula = "~ scale(LOWINC)"    # beta, dirichlet: formula of log(phi)
    # calibrate = "sandwich"             # or "dispersion": Model.fit(calibrate=...), for the
                                         # calibratable families, no group-level terms
    # [models.sampler]                   # per-model overrides of [sampler]

Errors (:class:`SpecError`) name the file, the line and the key, e.g.
``models/star98.toml, line 23, key models[2].likelihood: unknown likelihood 'betta'; ...``.
``models[i]`` counts the ``[[models]]`` tables from 1.

The file name without ``.toml`` is the spec's name and names its report folder
``reports/<name>/``. It must be a plain folder name: not ``.``/``..``, no leading dot, no path
separator, glob character (``* ? [ ]``) or control character, at most 100 characters
(:func:`check_spec_name`); other names are refused with a message, never rewritten.
"""

from softbayes.app.spec.data_files import SEPARATORS, read_table
from softbayes.app.spec.errors import SpecError
from softbayes.app.spec.loader import check_spec, load_spec
from softbayes.app.spec.names import SPEC_NAME_MAX, check_spec_name
from softbayes.app.spec.schema import (
    CompareSettings,
    ComputeSettings,
    DataSpec,
    ModelSpec,
    SamplerSettings,
    Spec,
)
from softbayes.app.spec.sections import SAMPLER_KEYS

__all__ = [
    "SAMPLER_KEYS",
    "SEPARATORS",
    "SPEC_NAME_MAX",
    "CompareSettings",
    "ComputeSettings",
    "DataSpec",
    "ModelSpec",
    "SamplerSettings",
    "Spec",
    "SpecError",
    "check_spec",
    "check_spec_name",
    "load_spec",
    "read_table",
]
