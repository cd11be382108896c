"""Analysis specs: validation errors (key + line), safety rules, built-in data. No fitting."""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from spec_helpers import cli, model_toml, spec_toml, write

from softbayes.app.files import replace_dir, report_lock
from softbayes.app.report import md_escape
from softbayes.app.spec import SpecError, check_spec, load_spec
from softbayes.data.datasets import BUILTIN_DATASETS, load_dataset

ROOT = Path(__file__).resolve().parents[2]

M1 = 'formula = "~ x"\n\n[[models]]\nname = "cb"'

# two models: wb as in spec_toml(), then cb with a prior
GOOD = spec_toml(
    model_toml(),
    model_toml("cb", "continuous_bernoulli",
               extra='\n[models.priors]\nx = { dist = "Normal", mu = 0, sigma = 1 }\n'),
)


def test_good_spec_loads_and_builds(folder):
    spec = load_spec(write(folder, GOOD))
    assert [m.name for m in spec.models] == ["wb", "cb"]
    assert spec.models[0].formula == "share ~ x"
    data, built = check_spec(spec)
    assert len(data) == 30 and set(built) == {"wb", "cb"}
    assert spec.models[1].priors == {"x": {"dist": "Normal", "mu": 0, "sigma": 1}}
    r = cli("check", folder / "s.toml")
    assert r.exit_code == 0, r.output
    assert "OK" in r.output


def _line_of(text, needle, nth=1):
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


@pytest.mark.parametrize(
    ("edit", "key", "needle", "message"),
    [
        # unknown key (with a suggestion)
        ((M1, M1.replace("formula", "formla")),
         "models[1].formla", 'formla = "~ x"', "unknown key 'formla'"),
        # wrong type
        (("draws = 10", 'draws = "many"'), "sampler.draws", 'draws = "many"',
         "expected an integer"),
        # missing data file
        (('path = "d.csv"', 'path = "missing.csv"'), "data.path", 'path = "missing.csv"',
         "not found"),
        # path outside the spec's folder
        (('path = "d.csv"', 'path = "../outside.csv"'), "data.path", 'path = "../outside.csv"',
         "outside the spec's folder"),
        # unknown family (second [[models]] table)
        (('likelihood = "continuous_bernoulli"', 'likelihood = "betta"'),
         "models[2].likelihood", 'likelihood = "betta"', "unknown likelihood 'betta'"),
        # bad formula column
        ((M1, M1.replace("~ x", "~ x + nope")),
         "models[1].formula", 'formula = "~ x + nope"', "['nope']"),
        # a formula that would call arbitrary code is refused
        ((M1, M1.replace("~ x", "~ np.save(x)")),
         "models[1].formula", "np.save", "not allowed"),
        # bad prior term (checked when the model is built)
        (("x = { dist", "zz = { dist"), "models[2].priors.zz", "zz = { dist", "unknown term"),
        # option of another family
        (("sigma = 1 }\n", "sigma = 1 }\n[models.options]\nthreshold = 0.5\n"),
         "models[2].options.threshold", "threshold = 0.5", "does not apply"),
        # duplicate model names
        (('name = "cb"', 'name = "wb"'), "models[2].name", 'name = "wb"', "used twice"),
    ],
)
def test_spec_errors_name_key_and_line(folder, tmp_path, edit, key, needle, message):
    text = GOOD.replace(*edit)
    assert text != GOOD
    (tmp_path / "outside.csv").write_text("x,share\n1,0.5\n")
    path = write(folder, text)
    nth = 2 if needle == 'name = "wb"' else 1
    line = _line_of(text, needle, nth)
    with pytest.raises(SpecError) as info:
        spec = load_spec(path)
        check_spec(spec)
    err = info.value
    assert err.key == key, str(err)
    assert err.line == line, str(err)
    assert message in str(err)
    # the command: non-zero exit, one paragraph with the key and the line, no traceback
    for args in (("check", path), ("run", path, "--reports-dir", tmp_path / "reports")):
        r = cli(*args)
        assert r.exit_code == 2, r.output
        assert f"line {line}" in r.output and f"key {key}" in r.output
        assert "Traceback" not in r.output
    assert not (tmp_path / "reports" / "s").exists()


def test_toml_syntax_error_has_line(folder):
    path = write(folder, GOOD.replace("[sampler]", "[sampler"))
    r = cli("check", path)
    assert r.exit_code == 2
    assert re.search(r"line \d+", r.output) and "not valid TOML" in r.output


def test_missing_spec_and_debug_traceback(folder):
    r = cli("run", folder / "nope.toml")
    assert r.exit_code == 2 and "spec file not found" in r.output
    r = cli("--debug", "check", write(folder, GOOD.replace('"d.csv"', '"zz.csv"')))
    assert r.exit_code != 0 and isinstance(r.exception, SpecError)


def test_absolute_data_path_refused(folder):
    path = write(folder, GOOD.replace('path = "d.csv"', f'path = "{folder / "d.csv"}"'))
    with pytest.raises(SpecError, match="absolute paths"):
        load_spec(path).load_data()


def test_symlink_out_of_folder_refused(folder, tmp_path):
    (tmp_path / "secret.csv").write_text("x,share\n1,0.5\n")
    (folder / "link.csv").symlink_to(tmp_path / "secret.csv")
    path = write(folder, GOOD.replace('"d.csv"', '"link.csv"'))
    with pytest.raises(SpecError, match="outside"):
        load_spec(path).load_data()


def test_only_unknown_model(folder):
    r = cli("check", write(folder, GOOD), "--only", "nope")
    assert r.exit_code == 2 and "no such model" in r.output


def test_repo_specs_validate_and_match_the_shipped_copies():
    for name in ("star98", "raters"):
        spec = load_spec(ROOT / "models" / f"{name}.toml")
        _, built = check_spec(spec)
        assert len(built) == len(spec.models) >= 3
        assert filecmp.cmp(ROOT / "models" / f"{name}.toml",
                           ROOT / "softbayes" / "app" / "specs" / f"{name}.toml", shallow=False)
    star = load_spec(ROOT / "models" / "star98.toml")
    assert {m.likelihood for m in star.models} == {
        "weighted_bernoulli", "continuous_bernoulli", "beta", "bernoulli"}


def test_builtin_datasets():
    star = load_dataset("star98")
    assert len(star) == 303
    assert np.allclose(star["share_above"], star["NABOVE"] / (star["NABOVE"] + star["NBELOW"]))
    r1, r2 = load_dataset("raters"), load_dataset("raters")
    pd.testing.assert_frame_equal(r1, r2)  # fixed seed
    assert np.allclose(r1[list(BUILTIN_DATASETS["raters"].labels)].sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="available"):
        load_dataset("nope")


def test_md_escape():
    assert md_escape("a_b *c* [l](u) <s>&|`") == r"a\_b \*c\* \[l\](u) &lt;s&gt;&amp;\|\`"
    assert md_escape("# h") == r"\# h"
    assert md_escape("1. x") == r"1\. x"
    assert md_escape("-0.5 (0.1)") == "-0.5 (0.1)"


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_dir_keeps_old_until_new_is_in_place(tmp_path, monkeypatch, exchange):
    import softbayes.app.files as files

    if not exchange:
        monkeypatch.setattr(files, "renameat2_exchange", lambda a, b: False)
    target, new = tmp_path / "r", tmp_path / ".r.tmp"
    target.mkdir()
    (target / "f").write_text("old")
    new.mkdir()
    (new / "f").write_text("new")
    replace_dir(new, target)
    assert (target / "f").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_report_lock_is_exclusive(tmp_path):
    from softbayes.app.files import ReportBusyError

    with report_lock(tmp_path, "x"):
        with pytest.raises(ReportBusyError, match="another softbayes run"):
            with report_lock(tmp_path, "x"):
                pass
        with report_lock(tmp_path, "y"):  # other reports are independent
            pass
    with report_lock(tmp_path, "x"):
        pass


def test_compare_kfold_group_key(folder):
    spec = load_spec(write(folder, GOOD + '\n[compare]\nkfold_group = "x"\n'))
    assert spec.compare.kfold_group == "x"
    assert spec.compare.compare_kwargs()["kfold_group"] == "x"
    assert load_spec(write(folder, GOOD)).compare.compare_kwargs()["kfold_group"] is None
    for bad, message in (("3", "expected a string"), ('""', "a column name")):
        with pytest.raises(SpecError, match=message) as info:
            load_spec(write(folder, GOOD + f"\n[compare]\nkfold_group = {bad}\n"))
        assert info.value.key == "compare.kfold_group"
