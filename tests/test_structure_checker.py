"""The structure check of ``make lint`` (tools/structure_check) on small synthetic trees.

Each rule must fire on a breach and stay quiet on the good code next to it: a clean tree gives no
violation at all, and each breach gives exactly the violations listed for it.
"""

import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))  # where tools/check_structure.py finds the package

import structure_check as checker  # noqa: E402


def _long_function(name: str, code_lines: int) -> str:
    """A function with ``code_lines`` lines of code plus a docstring, comments and blank lines."""
    body = [f"    x{i} = {i}" for i in range(code_lines - 2)]
    return "\n".join(
        [
            f"def {name}():",
            '    """A docstring over',
            "",
            '    three lines."""',
            "    # a comment-only line",
            "",
            *body,
            "",
            "    return 0",
        ]
    )


CLEAN = {
    "softbayes/__init__.py": '''
        """The package: public names only."""

        from softbayes.model import Model


        def __getattr__(name):
            # PEP 562 lazy attribute: allowed to import inside the function.
            from softbayes.terms import families

            return getattr(families, name)
        ''',
    "softbayes/_version.py": '''
        """The version."""

        __version__ = "0.1.0"
        ''',
    "softbayes/model.py": '''
        """Model: formula + family.

        A ``beta`` or ``bernoulli`` family is named in this docstring, and the fit attribute
        ``softbayes_family`` too.
        """

        from softbayes._version import __version__
        from softbayes.terms.families import get_family

        PRIOR_PARAMETERS = {"alpha": 1.0, "beta": 2.0}  # a parameter, not the family
        HALF_CAUCHY = {"beta": 1.0}


        class Model:
            """A model."""

            def __init__(self, likelihood="weighted_bernoulli", pair=("beta", "bernoulli")):
                self._main = get_family(likelihood)
                self.version = __version__

            def same(self, other):
                # Two cores are enough; see the note on threads.
                return self._main == other._main
        ''',
    "softbayes/terms/__init__.py": '"""Model terms."""\n',
    "softbayes/terms/families/__init__.py": '''
        """The family registry: the family classes in a fixed order."""

        from softbayes.terms.families.bernoulli import BernoulliFamily
        from softbayes.terms.families.beta import BetaFamily

        FAMILIES = {"beta": BetaFamily, "bernoulli": BernoulliFamily}


        def get_family(name):
            """The family called ``name``."""
            if name == "beta":
                return BetaFamily()
            return FAMILIES[name]()
        ''',
    "softbayes/terms/families/base.py": '''
        """The family base class."""


        class Family:
            """A family."""

            name = ""
        ''',
    "softbayes/terms/families/beta.py": '''
        """The Beta family."""

        from softbayes.terms.families.base import Family


        class BetaFamily(Family):
            """Beta."""

            name = "beta"
        ''',
    "softbayes/terms/families/bernoulli.py": '''
        """The Bernoulli family: a family module may name families too."""

        from softbayes.terms.families.base import Family


        class BernoulliFamily(Family):
            """Bernoulli."""

            name: str = "bernoulli"

            def group(self, other):
                """Shared with Beta fits."""
                return "shared" if other in ("beta", "bernoulli") else self.name
        ''',
    "softbayes/app/__init__.py": '"""The application."""\n',
    "softbayes/app/cli.py": '''
        """The command line."""


        def main():
            """Defers its imports to keep --help fast."""
            import numpy as np

            from softbayes.model import Model

            return Model(), np
        ''',
    "softbayes/io/__init__.py": '"""Files."""\n',
    "softbayes/io/attrs.py": '''
        """Fit attributes."""

        FAMILY = "softbayes_family"
        ''',
    "softbayes/ops/__init__.py": '"""Ops."""\n',
    "softbayes/ops/rewrites.py": '''
        """Graph rewrites."""

        TAG = "softbayes_glm"
        ''',
    "softbayes/data/__init__.py": '"""Data."""\n',
    "softbayes/data/lengths.py": '"""Long, but within the limits."""\n\n\n'
    + _long_function("long_enough", 80)
    + "\n",
    "tests/test_model.py": '''
        """Tests of the model."""

        from softbayes.model import Model


        def _helper():
            return Model()


        def test_model():
            m = _helper()
            assert m.same(m)
        ''',
}


def _write(root: Path, files: dict) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def _found(root: Path) -> set[tuple[str, int, str]]:
    return {(v.path, v.line, v.rule) for v in checker.check(root)}


def test_clean_tree_has_no_violation(tmp_path):
    _write(tmp_path, CLEAN)
    assert checker.check(tmp_path) == []
    # every module of the registry package, in file order
    assert checker.family_names(checker.Project(tmp_path)) == ("bernoulli", "beta")


BREACHES = {
    "import-cycle": (
        {
            "softbayes/data/a.py": '"""A."""\n\nfrom softbayes.data import b\n',
            "softbayes/data/b.py": '"""B."""\n\nfrom softbayes.data.a import X\n\nX = 1\n',
        },
        {("softbayes/data/a.py", 3, "import-cycle")},
    ),
    "import-cycle through a function-level import": (
        {
            "softbayes/data/a.py": '"""A."""\n\nimport softbayes.data.b\n',
            "softbayes/data/b.py": '"""B."""\n\n\ndef f():\n    from . import a\n',
        },
        {("softbayes/data/a.py", 3, "import-cycle"), ("softbayes/data/b.py", 5, "function-import")},
    ),
    "import-cycle through the root package": (
        {
            "softbayes/__init__.py": (
                '"""Pkg."""\n\nfrom softbayes.model import Model\n'
                "from softbayes.terms.extra import f\n"
            ),
            "softbayes/terms/extra.py": '"""Extra."""\n\nfrom softbayes import Model\nf = Model\n',
        },
        {("softbayes/__init__.py", 4, "import-cycle")},
    ),
    "import-cycle through a package's __init__ (from pkg import submodule)": (
        {
            "softbayes/ops/__init__.py": '"""Ops."""\n\nfrom softbayes.ops.disp import f\n',
            "softbayes/ops/disp.py": (
                '"""Disp."""\n\nfrom softbayes.ops import kern\n\nf = kern\n'
            ),
            "softbayes/ops/kern.py": '"""Kern."""\n',
        },
        {("softbayes/ops/__init__.py", 3, "import-cycle")},
    ),
    "no cycle through the root package when it does not import the module": (
        {"softbayes/terms/design.py": '"""Design."""\n\nfrom softbayes import Model\n'},
        set(),
    ),
    "function-import": (
        {
            "softbayes/data/c.py": '''
                """C."""

                import importlib


                def f():
                    from softbayes.model import Model

                    return Model


                def g():
                    return importlib.import_module("softbayes.model")
                ''',
        },
        {
            ("softbayes/data/c.py", 7, "function-import"),
            ("softbayes/data/c.py", 13, "function-import"),
        },
    ),
    "private-import": (
        {
            "softbayes/model.py": CLEAN["softbayes/model.py"]
            + "\n\n        def _helper():\n            pass\n",
            "softbayes/terms/priors.py": '"""Priors."""\n\nfrom .families import _secret\n',
            "tests/test_private.py": '''
                """Reaching into private names."""

                from unittest import mock

                import softbayes.model as sm
                from softbayes._version import __version__
                from softbayes.model import _helper


                def test_it():
                    sm._helper()
                    with mock.patch("softbayes.model._helper"):
                        pass
                ''',
        },
        {
            ("softbayes/terms/priors.py", 3, "private-import"),
            ("tests/test_private.py", 6, "private-import"),
            ("tests/test_private.py", 7, "private-import"),
            ("tests/test_private.py", 11, "private-import"),
            ("tests/test_private.py", 12, "private-import"),
        },
    ),
    "private-attribute": (
        {
            "softbayes/app/runner.py": '"""Run."""\n\n\ndef run(model):\n    return model._main\n',
            "tests/test_attr.py": '"""Attr."""\n\n\ndef test_it(m):\n    m._main = None\n',
        },
        {
            ("softbayes/app/runner.py", 5, "private-attribute"),
            ("tests/test_attr.py", 5, "private-attribute"),
        },
    ),
    "module-length": (
        {
            "softbayes/data/ok.py": '"""Exactly at the limit."""\n' + "x = 1\n" * 499,
            "softbayes/data/big.py": '"""One line over."""\n' + "x = 1\n" * 500,
        },
        {("softbayes/data/big.py", 1, "module-length")},
    ),
    "function-length": (
        {"softbayes/data/fn.py": '"""Too long."""\n\n\n' + _long_function("too_long", 81) + "\n"},
        {("softbayes/data/fn.py", 4, "function-length")},
    ),
    "docstring": (
        {
            "softbayes/data/nodoc.py": "# a comment is not a docstring\nx = 1\n",
            "softbayes/data/empty.py": "",
        },
        {("softbayes/data/nodoc.py", 1, "docstring"), ("softbayes/data/empty.py", 1, "docstring")},
    ),
    "issue-reference": (
        {
            "softbayes/data/hist.py": '''
                """History (issue 12).

                Fixed in #7; the colour ``C1`` and 2 cores are no issue.
                """

                x = 1  # see Issue #3
                y = "#4 is a string, not a comment"
                ''',
        },
        {
            ("softbayes/data/hist.py", 1, "issue-reference"),
            ("softbayes/data/hist.py", 3, "issue-reference"),
            ("softbayes/data/hist.py", 6, "issue-reference"),
        },
    ),
    "family-name": (
        {
            "softbayes/app/spec.py": '''
                """Spec."""

                FAMILY_NAMES = ("beta", "bernoulli")
                OPTIONS = {"beta": ["squeeze"], "bernoulli": ["threshold"]}


                def options(family, name):
                    if family.name == "beta":
                        return 1
                    if name in ("bernoulli", "other"):
                        return 2
                    match name:
                        case "bernoulli":
                            return 3
                    return dict(beta=1, bernoulli=2)
                ''',
        },
        {
            ("softbayes/app/spec.py", 3, "family-name"),
            ("softbayes/app/spec.py", 4, "family-name"),
            ("softbayes/app/spec.py", 8, "family-name"),
            ("softbayes/app/spec.py", 10, "family-name"),
            ("softbayes/app/spec.py", 13, "family-name"),
            ("softbayes/app/spec.py", 15, "family-name"),
        },
    ),
    "family-name next to the registry package": (
        {
            "softbayes/terms/families_extra.py": (
                '"""Not in the registry package."""\n\nBETA = {"beta": 1, "bernoulli": 2}\n'
            ),
        },
        {
            ("softbayes/terms/families_extra.py", 3, "family-name"),
        },
    ),
    "fit-attr-key": (
        {
            "softbayes/app/report.py": '''
                """Report."""


                def family(attrs, key):
                    return attrs["softbayes_family"], attrs[f"softbayes_{key}"]
                ''',
        },
        {("softbayes/app/report.py", 5, "fit-attr-key")},
    ),
    "syntax": (
        {"softbayes/data/broken.py": '"""Broken."""\n\ndef f(:\n'},
        {("softbayes/data/broken.py", 3, "syntax")},
    ),
}


@pytest.mark.parametrize("case", sorted(BREACHES))
def test_each_breach_is_reported_exactly(tmp_path, case):
    files, expected = BREACHES[case]
    _write(tmp_path, {**CLEAN, **files})
    assert _found(tmp_path) == expected


def test_fit_attr_key_reports_plain_and_f_string_literals(tmp_path):
    _write(tmp_path, {**CLEAN, **BREACHES["fit-attr-key"][0]})
    details = sorted(v.detail for v in checker.check(tmp_path))
    assert details == ["f-string f'softbayes_{key}'", "literal 'softbayes_family'"]


def test_cycle_detail_names_the_modules_and_lines(tmp_path):
    files, _ = BREACHES["import-cycle"]
    _write(tmp_path, {**CLEAN, **files})
    (violation,) = checker.check(tmp_path)
    assert (
        violation.detail == "softbayes.data.a (l.3) -> softbayes.data.b (l.3) -> softbayes.data.a"
    )


def test_main_prints_path_line_rule_detail_and_fails(tmp_path, capsys):
    _write(tmp_path, {**CLEAN, **BREACHES["function-length"][0]})
    assert checker.main([str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert out.out == (
        "softbayes/data/fn.py:4: function-length: too_long() has 81 lines of code (limit 80)\n"
    )
    assert "function-length 1" in out.err


def test_main_passes_on_clean_tree(tmp_path, capsys):
    _write(tmp_path, CLEAN)
    assert checker.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""


def test_family_names_are_read_from_the_real_registry():
    from softbayes.terms.families import family_names

    project = checker.Project(ROOT)
    assert sorted(checker.family_names(project)) == sorted(family_names())
