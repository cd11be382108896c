"""Shared helpers of the spec and CLI tests: a small spec, its data, and the one-error check.

Importable from every test file as ``spec_helpers`` (``pythonpath = ["tests"]`` in
pyproject.toml). The ``folder`` fixture of tests/conftest.py writes :func:`spec_data` as
``d.csv`` into a spec folder; :func:`spec_toml` writes the spec that reads it::

    title = "ok"
    seed = 3

    [data]
    path = "d.csv"
    labels = "share"

    [sampler]
    draws = 10
    tune = 10
    chains = 1

    [[models]]
    name = "wb"
    likelihood = "weighted_bernoulli"
    formula = "~ x"
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from softbayes.app.cli import app

SPEC_HEAD = """\
title = "{title}"
seed = {seed}

[data]
path = "{path}"
labels = "share"
{data_extra}
[sampler]
draws = 10
tune = 10
chains = 1
"""

MODEL = """
[[models]]
name = "{name}"
likelihood = "{likelihood}"
formula = {formula}
{extra}"""


def model_toml(name="wb", likelihood="weighted_bernoulli", formula='"~ x"', extra=""):
    """One ``[[models]]`` table; ``formula`` is a TOML value (quoted), ``extra`` follows it."""
    return MODEL.format(name=name, likelihood=likelihood, formula=formula, extra=extra)


def spec_toml(*models, title="ok", seed=3, path="d.csv", data_extra=""):
    """A spec of the data at ``path`` and ``models`` (default: one ``model_toml()``).

    ``data_extra`` holds lines that end the ``[data]`` table (each ending in a newline).
    """
    head = SPEC_HEAD.format(title=title, seed=seed, path=path, data_extra=data_extra)
    return head + "".join(models or (model_toml(),))


def spec_data(n=30) -> pd.DataFrame:
    """``n`` rows of a predictor ``x`` (seed 0) and the soft label ``share = sigmoid(x)``."""
    x = np.random.default_rng(0).normal(size=n)
    return pd.DataFrame({"x": x, "share": 1 / (1 + np.exp(-x))})


def write(folder, text, name="s.toml"):
    """Write ``text`` to ``folder / name`` and return that path."""
    p = folder / name
    p.write_text(text)
    return p


def cli(*args):
    """Run the ``softbayes`` command in-process with ``args`` (made strings)."""
    return CliRunner().invoke(app, list(map(str, args)))


def one_error(result, *needles, case="") -> str:
    """Exit status 2, no traceback, one ``error:`` paragraph holding every needle; return it.

    ``case`` starts the assertion messages.
    """
    where = f"{case}: " if case else ""
    out = result.output
    assert result.exit_code == 2, f"{where}exit {result.exit_code}\n{out}"
    assert "Traceback" not in out, out
    assert result.exception is None or isinstance(result.exception, SystemExit), out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"{where}expected one error paragraph:\n{out}"
    for needle in needles:
        assert needle in errors[0], f"{where}{needle!r} not in: {errors[0]}"
    return errors[0]
