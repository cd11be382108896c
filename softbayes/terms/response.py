"""The response of a formula: label column(s), or counts of trials written ``p(k, m)``.

A formula's left-hand side names what a model is fitted to:

* one column of soft labels on [0, 1] (``share ~ x``);
* ``c(p_a, ..., p_K)``, K columns of probability vectors (``soft_categorical``);
* ``p(k, m)``, Bambi's binomial response: ``k`` successes (annotators who said "yes") of
  ``m`` trials (annotators), ``m`` a column or a positive whole number (``p(k, 5)``).

The labels *as given* of a ``p(k, m)`` response are the proportions ``k / m`` for every
family: that is what the common-scale scores, the labels hash and the soft-label families
(``weighted_bernoulli``, ``beta``, ...) see. The count families (:attr:`Family.takes_trials`:
``beta_binomial``, ``binomial``) receive the trials as well and model the counts. Row weights
stay separate: ``p(k, m)`` gives no weights unless the model is given ``weights="m"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from softbayes.data.validation import row_summary

__all__ = ["Response"]


def _column_values(frame, col, what):
    """The values of column ``col`` as float64, refusing text, booleans and non-integers."""
    values = frame[col].to_numpy()
    if values.dtype.kind not in "iuf":
        raise ValueError(f"{what} column {col!r}: must hold whole numbers (got dtype "
                         f"{values.dtype}); convert it first.")
    values = values.astype(np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        count, shown = row_summary(bad, frame.index)
        raise ValueError(f"{what} column {col!r}: {count} of {len(values)} rows are not whole "
                         f"numbers (index {shown}); p(k, m) takes counts.")
    return values


@dataclass(frozen=True)
class Response:
    """A formula's left-hand side.

    Attributes
    ----------
    columns : tuple of str
        The label columns; for ``p(k, m)`` the one column of counts ``k``.
    multiclass : bool
        Written ``c(...)``: one probability vector per row.
    trials : str or int or None
        For ``p(k, m)``: the column of trials ``m``, or a constant number of trials.
    """

    columns: tuple
    multiclass: bool = False
    trials: str | int | None = None

    @property
    def counts(self) -> bool:
        """Written ``p(k, m)``: counts of trials."""
        return self.trials is not None

    @property
    def data_columns(self) -> tuple:
        """The data columns the response reads (labels, and the trials column if any)."""
        extra = (self.trials,) if isinstance(self.trials, str) else ()
        return (*self.columns, *extra)

    def text(self) -> str:
        """The response as written in a formula (for messages)."""
        if self.counts:
            return f"p({self.columns[0]}, {self.trials})"
        return self.columns[0] if not self.multiclass else f"c({', '.join(self.columns)})"

    def has_trials(self, frame) -> bool:
        """Whether the trials of ``frame``'s rows are known (a constant, or its column)."""
        return self.counts and (not isinstance(self.trials, str) or self.trials in frame)

    def trials_of(self, frame) -> np.ndarray:
        """The trials ``m`` of the rows of ``frame`` (float64; whole numbers >= 1)."""
        if not isinstance(self.trials, str):
            return np.full(len(frame), float(self.trials))
        m = _column_values(frame, self.trials, "trials")
        low = m < 1
        if low.any():
            count, shown = row_summary(low, frame.index)
            raise ValueError(f"trials column {self.trials!r}: {count} of {len(m)} rows have "
                             f"fewer than 1 trial (index {shown}); every row of p(k, m) needs "
                             "m >= 1 (drop the rows nobody labelled).")
        return m

    def counts_of(self, frame) -> tuple[np.ndarray, np.ndarray]:
        """``(k, m)`` of the rows of ``frame``, checked: whole numbers, ``0 <= k <= m``."""
        m = self.trials_of(frame)
        k = _column_values(frame, self.columns[0], "counts")
        bad = (k < 0) | (k > m)
        if bad.any():
            count, shown = row_summary(bad, frame.index)
            raise ValueError(f"{self.text()}: {count} of {len(k)} rows have counts outside "
                             f"0 <= k <= m (index {shown}); k counts the successes among m "
                             "trials.")
        return k, m

    def labels(self, frame) -> np.ndarray:
        """The labels as given: the proportions ``k / m`` of ``p(k, m)``, else the label
        column(s) (``(n,)`` or ``(n, K)``)."""
        if self.counts:
            k, m = self.counts_of(frame)
            return k / m
        if self.multiclass:
            return frame[list(self.columns)].to_numpy()
        return frame[self.columns[0]].to_numpy()

    def with_labels(self, frame, labels):
        """A copy of ``frame`` whose response holds ``labels`` (labels as given: for
        ``p(k, m)`` the proportions, turned back into counts ``k = labels * m``)."""
        frame = frame.copy()
        if self.multiclass:
            frame[list(self.columns)] = labels
        elif self.counts:
            m = self.trials_of(frame)
            k = np.asarray(labels, float) * m
            bad = ~np.isfinite(k) | (np.abs(k - np.round(k)) > 1e-6 * np.maximum(m, 1.0))
            if bad.any():
                count, shown = row_summary(bad, frame.index)
                raise ValueError(f"labels of {self.text()}: {count} rows are not a whole number "
                                 f"of trials k / m (index {shown}).")
            frame[self.columns[0]] = np.round(k)
        else:
            frame[self.columns[0]] = labels
        return frame
