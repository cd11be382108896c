"""The report's sentences: the conclusion drawn from the scores and ELPDs, and the caveats."""

from __future__ import annotations

from softbayes.analysis.comparison import CROSS_GROUP, GROUP_DESCRIPTIONS
from softbayes.backend.calibration import dispersion_warning
from softbayes.io.attrs import FitAttrs
from softbayes.terms.families import family_class, family_names

__all__ = ["caveats", "conclusion", "dispersion_findings", "failing_fits", "group_description"]

_CALIBRATE_HOW = (
    'To calibrate: in the spec, calibrate = "dispersion" (or "sandwich") under the model\'s '
    '[models.options]; in Python, Model.fit(calibrate="dispersion").')

_SCORE_LABELS = {"log": "log score (cross-entropy)", "brier": "Brier score"}


def group_description(group: str) -> str:
    """What the log-likelihoods of an ELPD group are, or the group's name for a group no
    family declares (e.g. a Bernoulli threshold group)."""
    return GROUP_DESCRIPTIONS.get(group, group)


def failing_fits(cmp) -> set[str]:
    """The models whose sampling diagnostics failed (R-hat, ESS, divergences, E-BFMI,
    non-finite draws): never named as preferred."""
    d = cmp.diagnostics
    if "n_sampling_warnings" not in getattr(d, "columns", ()):
        return set()
    return {str(n) for n, v in d["n_sampling_warnings"].items() if int(v)}


def _not_preferred(best, table, failing) -> str:
    """The clause that withholds the preference from a best model with failed diagnostics."""
    clean = [str(n) for n in table.index if str(n) not in failing]
    text = (f"{best} comes first, but its sampling diagnostics failed (see Diagnostics), so "
            "no preference is drawn from it until it is sampled again")
    if clean:
        text += f"; the first model with clean diagnostics is {clean[0]}"
    return text


def _score_sentence(key: str, table, failing=frozenset()) -> str:
    """The preferred model on one common-scale score, and who is tied with it or worse."""
    best = table.index[0]
    label = _SCORE_LABELS.get(key, key)
    if str(best) in failing:
        return f"Common scale, {label}: {_not_preferred(best, table, failing)}."
    if len(table) < 2:
        return f"Common scale, {label}: only one model ({best})."
    tied, worse = [], []
    for other in table.index[1:]:
        d = abs(float(table.loc[other, "diff"]))
        dse = float(table.loc[other, "dse"])
        item = f"{other} ({d:.2f} behind, SE {dse:.2f})"
        (worse if d > 2 * dse else tied).append(item)
    sentence = f"Common scale, {label}: preferred model {best}"
    if tied:
        sentence += "; within two standard errors of it, so not clearly worse: " + ", ".join(tied)
    if worse:
        sentence += "; clearly worse: " + ", ".join(worse)
    return sentence + "."


def _elpd_sentence(group: str, table, failing=frozenset()) -> str:
    """The preferred model of one ELPD group over the runner-up."""
    desc = group_description(group)
    if str(table.index[0]) in failing:
        return f"ELPD, group {group} ({desc}): {_not_preferred(table.index[0], table, failing)}."
    if len(table) < 2:
        return (f"ELPD, group {group} ({desc}): one model ({table.index[0]}); "
                "nothing to compare it with on this scale.")
    best, second = table.index[0], table.index[1]
    d = abs(float(table.loc[second, "elpd_diff"]))
    dse = float(table.loc[second, "dse"])
    return (f"ELPD, group {group} ({desc}): {best} is preferred over {second} by "
            f"{d:.2f} (SE {dse:.2f})"
            + ("." if d > 2 * dse else "; within two standard errors, not clearly better."))


def conclusion(cmp, elpd_tables) -> list[str]:
    """What the comparison ``cmp`` finds: per score, calibration, per ELPD group."""
    failing = failing_fits(cmp)
    out = [_score_sentence(k, cmp.score_tables[k], failing) for k in cmp.score_tables]
    s = cmp.scores
    if "ece" in s and len(s) > 1:
        best_ece = s["ece"].astype(float).idxmin()
        out.append(f"Calibration: {best_ece} has the smallest calibration error "
                   f"(ECE {float(s.loc[best_ece, 'ece']):.3f}).")
    out += [_elpd_sentence(group, table, failing) for group, table in elpd_tables.items()
            if group != CROSS_GROUP]
    return out


def caveats(cmp, elpd_tables) -> list[str]:
    """What a reader must keep in mind: incomparable groups, each family's own caveat
    (its ``comparison_note``), diagnostics warnings, K-fold estimates."""
    out = []
    groups = [g for g in elpd_tables if g != CROSS_GROUP]
    if len(groups) > 1:
        kinds = "; ".join(GROUP_DESCRIPTIONS.get(g, g) for g in groups)
        out.append(
            f"ELPDs of different groups are not comparable: {kinds} are different kinds of "
            "numbers (a density of the label can 'win' a naive comparison whatever the fit: "
            "log C(lambda) >= log 2 alone would give the Continuous Bernoulli 0.69 nats per "
            "observation over a cross-entropy). Choose across groups with the common-scale "
            "scores."
        )
    present = set(cmp.families.values())
    out += [family_class(name).comparison_note for name in family_names()
            if name in present and family_class(name).comparison_note]
    bad = [str(n) for n, row in cmp.diagnostics.iterrows() if int(row.get("n_warnings", 0))]
    if bad:
        out.append(
            f"Diagnostics raised warnings for {', '.join(bad)} (see Diagnostics): check them "
            "before relying on these models' numbers; more draws or chains usually help."
        )
    if cmp.cv and any(v != "psis-loo" for v in cmp.cv.values()):
        out.append(_kfold_statement(cmp.cv))
    return out


def _kfold_statement(cv: dict) -> str:
    """Which models' ELPDs and scores come from exact K-fold refits, which from PSIS-LOO."""
    kfold = [str(n) for n, v in cv.items() if v != "psis-loo"]
    psis = [str(n) for n, v in cv.items() if v == "psis-loo"]
    methods = sorted({v for v in cv.values() if v != "psis-loo"})
    text = (f"The ELPDs and scores of {', '.join(kfold)} come from exact K-fold "
            f"cross-validation ({', '.join(methods)} in the cv column: each model refitted "
            "without each fold, the same folds for every model)")
    if psis:
        text += f"; those of {', '.join(psis)} from PSIS-LOO"
    return text + ". See the cv column."


def dispersion_findings(fits: dict, names) -> list[str]:
    """Per model whose fit records a dispersion (``softbayes_dispersion``): outside
    :data:`~softbayes.backend.calibration.DISPERSION_WARN_RANGE` and uncalibrated, what it
    means for the intervals and what to do; calibrated, that the intervals account for it."""
    out = []
    for name in names:
        a = FitAttrs.from_attrs(fits[name].attrs, warn_unknown=False)
        if a.dispersion is None:
            continue
        if a.calibration not in (None, "none"):
            out.append(f"{name}: dispersion phi = {a.dispersion:.3g}; the fit is calibrated "
                       f"(calibrate={a.calibration!r}), its intervals account for it.")
            continue
        msg = dispersion_warning(a.dispersion, a.family)
        if msg:
            out.append(f"{name}: {msg} {_CALIBRATE_HOW}")
    return out
