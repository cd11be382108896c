"""
Comparing likelihoods, and an analysis spec with its report
===========================================================

Which likelihood should model a proportion? :func:`softbayes.compare` answers only what can
be answered: ELPDs (PSIS-LOO) are ranked *within* groups of comparable observation models
(densities of the label with densities, cross-entropies with cross-entropies), and every
fit is scored on one common scale, the out-of-sample log score and Brier score of its
predicted mean against the soft labels. Plain ``arviz.compare`` would rank the
weighted-Bernoulli cross-entropy against the densities without a word (the Continuous
Bernoulli wins such a ranking by at least :math:`\\log 2` per observation whatever the fit).
"""

# %%
import tempfile
from pathlib import Path

import softbayes as sb

df = sb.load_dataset("star98")
rhs = "scale(LOWINC) + scale(PERMINTE) + scale(PCTAF)"
fits = {
    family: sb.Model(f"share_above ~ {rhs}", df, likelihood=family).fit(
        draws=500, tune=500, chains=2, random_seed=1, warn=False
    )
    for family in ("weighted_bernoulli", "continuous_bernoulli", "beta")
}

# %%
# ``kfold_fallback=None`` keeps PSIS-LOO even where its Pareto :math:`\hat k` flags it as
# unreliable (it then warns); the default re-estimates every fit by exact K-fold
# cross-validation on the same folds (10 refits per fit, each reusing the compiled model).
# It also diagnoses every fit and warns, in words, about any that crosses a threshold
# (two short chains, as here, may leave an R-hat just above 1.01).
comparison = sb.compare(fits, kfold_fallback=None)
print(comparison)

# %%
# The common-scale scores, best first, and a reliability diagram of each fit's
# out-of-sample predictive means:
print(comparison.scores.round(3).to_string())

# %%
fig = comparison.plot_calibration()

# %%
# The weighted Bernoulli draws hard 0/1 labels, so an ECDF or LOO-PIT of its draws against
# soft labels would reject even the model that generated the data. What it predicts is the
# mean, and its predictive check is a reliability diagram (PAVA) of the soft labels against
# the predicted mean, with the band of the same curve under labels replicated from the fit:
fig = sb.plot_ppc(fits["weighted_bernoulli"])

# %%
# A whole analysis from a spec
# ----------------------------
# A spec (TOML) names the data, the candidates and the sampler; it is data, never code.
# :func:`softbayes.run_spec` (or ``softbayes run SPEC`` on the command line) fits every
# candidate, compares them and writes a self-contained report, ``<reports>/<spec name>/``
# (``index.html``, ``report.md``, figures, tables and the fits).
spec = f"""
title = "STAR98: two candidates"
seed = 1

[data]
builtin = "star98"
labels = "share_above"

[sampler]
draws = 200
tune = 200
chains = 2

[compare]
kfold_fallback = "none"

[[models]]
name = "weighted Bernoulli"
likelihood = "weighted_bernoulli"
formula = "~ {rhs}"

[[models]]
name = "Beta"
likelihood = "beta"
formula = "~ {rhs}"
"""
with tempfile.TemporaryDirectory() as folder:
    spec_path = Path(folder) / "star98_small.toml"
    spec_path.write_text(spec, encoding="utf-8")
    result = sb.run_spec(spec_path, reports_dir=Path(folder) / "reports",
                         echo=lambda message, nl=True: print(message))
    print(sorted(path.name for path in result.report_dir.iterdir()))
