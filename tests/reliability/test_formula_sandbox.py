"""Hostile formulas are refused at every entry point, and legitimate ones evaluate as before.

A formula reaches softbayes from a spec (``formula``, ``[models.options] phi_formula``), from
``softbayes fit --formula / --phi-formula``, and from the attrs of every saved fit
(``sb.load_fit``, ``Model.from_fit``, ``softbayes compare``, ``softbayes report``). Each
formula of the hostile corpus below (hand-written classes plus hypothesis-generated attribute
chains, strings with backticks, Unicode look-alikes and calls hidden in keyword arguments)
goes through every one of them, with an audit hook watching (``audit_guard``, see
conftest.py): each must end in a ValueError or exit status 2 with one ``error:`` paragraph,
and no program may start and nothing outside the test's folder may be removed. Payloads
write a file ``pwned`` into the working directory, which must never appear.

The positive corpus holds every kind of formula the other tests and the shipped specs use;
each passes the sandbox and builds exactly the design matrix formulae builds with a plain
namespace holding the numpy module (the old behaviour).

Counts go to the ``reliability`` fixture, section ``hostile_formulas`` (one per formula and
entry point) and ``legit_formulas``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import formulae
import h5py
import numpy as np
import pandas as pd
import pytest
from formulae.environment import Environment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_helpers import cli, model_toml, one_error, spec_toml

import softbayes as sb
from softbayes.io.fits import FitFileError, save_fit
from softbayes.terms.design import DEFAULT_NAMESPACE, LinearDesign
from softbayes.terms.formulae_compat import transform_parameters
from softbayes.terms.sandbox import SAFE_NUMPY, FormulaError, check_formula, safe_namespace

ROOT = Path(__file__).resolve().parents[2]
PWN = "touch pwned"

# --------------------------------------------------------------------------- hostile corpus

_FW = {c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyz0123456789"}


def fullwidth(text: str) -> str:
    """Fullwidth look-alikes of ASCII letters and digits (NFKC maps them back)."""
    return "".join(_FW.get(c, c) for c in text)


HOSTILE: dict[str, list[str]] = {
    "backtick inside a string": [
        f"~ I(x * ('`' != 'a')) + I(z + 0 * np.f2py.os.system('{PWN} #`'))",
        f'~ I(x * ("`" != "a")) + I(z + 0 * np.f2py.os.system("{PWN} #`"))',
        f"~ x + I('`') + np.f2py.os.system('{PWN}') + I('`')",
        "~ `x` + I(\"`\") + eval('1') + I(\"`\")",
        f"~ I(g == '`') + I(x + 0 * np.lib.npyio.os.system('{PWN}')) + I(g == '`')",
        f"~ C(g, levels='`') + np.f2py.os.system('{PWN}`')",
    ],
    "attribute chain": [
        f"~ x + I(0 * np.f2py.os.system('{PWN}'))",
        f"~ np.f2py.os.system('{PWN}')",
        f"~ scale(np.f2py.os.system('{PWN}'))",
        f"~ np.os.system('{PWN}')",
        f"~ np.lib.npyio.os.system('{PWN}')",
        f"~ np.ctypeslib.os.system('{PWN}')",
        f"~ np.testing.os.system('{PWN}')",
        "~ np.f2py.os.remove('d.csv')",
        "~ np.lib.format.os.unlink('d.csv')",
        "~ np.save(x)",
        "~ np.load('fit.nc')",
        "~ np.fromfile('d.csv')",
        "~ np.random.seed(x)",
        "~ np.log.reduce(x)",
        "~ np.log.__self__(x)",
        "~ log.reduce(x)",
        "~ scale.__init__(x)",
        "~ I.__globals__(x)",
        "~ x.real(x)",
        "~ pd.read_csv('d.csv')",
        "~ os.system('id')",
        "~ subprocess.run('id')",
        "~ sys.modules(x)",
        "~ np.f2py",
        "~ I(np.f2py.os)",
    ],
    "import": [
        "~ __import__('os').system('id')",
        "~ importlib.import_module('os')",
        "~ I(__import__)",
        "~ np.__import__('os')",
        "~ x + import_module('os')",
        "~ builtins.open('pwned', 'w')",
    ],
    "getattr": [
        "~ getattr(np, 'f2py')",
        "~ I(getattr(x, 'real'))",
        "~ setattr(np, 'log', x)",
        "~ delattr(np, 'log')",
        "~ x + hasattr(x, 'y')",
        "~ getattr",
    ],
    "dunder": [
        "~ x.__class__",
        "~ I(x.__class__.__mro__)",
        "~ x + __builtins__",
        "~ I(x.__dict__)",
        "~ log.__class__.__subclasses__(x)",
        "~ a__b",
        "~ np.__dict__",
        "~ scale(x).__class__",
    ],
    "subscript": [
        "~ g[a]",
        "~ x['a']",
        "~ I(x[0])",
        "~ np.log[0](x)",
        "~ C(g)[0]",
    ],
    "lambda": [
        "~ (lambda: 0)()",
        "~ I(lambda x: x)",
        "~ lambda",
    ],
    "comprehension": [
        "~ I([os for os in x])",
        "~ I({x for x in z})",
        "~ {x for x in z}",
        "~ I((x for x in z))",
    ],
    "starred": [
        "~ log(*x)",
        "~ log(**x)",
        "~ I(*[x])",
        "~ bs(x, **{'df': 3})",
    ],
    "walrus": [
        "~ I(y := 1)",
        "~ (x := np.f2py)",
    ],
    "f-string": [
        "~ I(f'{x}')",
        "~ I(f'{np.f2py.os.system(1)}')",
    ],
    "keyword argument": [
        "~ bs(x, df=eval('3'))",
        f"~ poly(x, degree=np.f2py.os.system('{PWN}'))",
        "~ C(g, levels=open('pwned', 'w'))",
        f"~ C(g, contrast=np.f2py.os.system('{PWN}'))",
        "~ scale(x, out=z)",
        "~ log(x, where=z)",
        "~ np.round(x, decimals=__import__)",
        "~ bs(x, knots=x)",
        f"~ cr(x, df=I(np.f2py.os.system('{PWN}')))",
        f"~ C(g, Treatment(reference=np.f2py.os.system('{PWN}')))",
        "~ poly(x, 2, raw=exec('1'))",
        "~ bs(x, df=3, df=4)",
        "~ bs(x, x=z)",
        f"~ C(g, Treatment(np.f2py.os.system('{PWN}')))",
        "~ I(x, out=z)",
        "~ poly(x, 2, 3, 4)",
        "~ bs(df=3, x)",
        "~ cc(x, period=z)",
    ],
    "Unicode look-alike": [
        f"~ {fullwidth('eval')}('1')",
        f"~ {fullwidth('os')}",
        f"~ {fullwidth('np')}.{fullwidth('f2py')}.{fullwidth('os')}.{fullwidth('system')}('id')",
        f"~ np.{fullwidth('log')}(x)",
        "~ np.l\u043eg(x)",  # Cyrillic o
        "~ \u212fval('1')",  # script e: NFKC gives eval
        "~ x\u200b + z",  # zero-width space
        "~ x + \u202ez",  # right-to-left override
        f"~ I({fullwidth('np')}.f2py)",
        "~ \ufb01x",  # the fi ligature
    ],
    "builtin": [
        "~ open('pwned', 'w')",
        "~ eval('1')",
        "~ exec('1')",
        "~ compile('1', 'f', 'exec')",
        "~ globals()",
        "~ locals()",
        "~ vars()",
        "~ breakpoint()",
        "~ input()",
        "~ print(x)",
        "~ exit()",
        "~ help()",
        "~ memoryview(x)",
        "~ type(x)",
        "~ object()",
        "~ dir()",
        "~ len(x)",
        "~ x + eval",
        "~ x + exec",
        "~ globals",
        "~ I(x + compile)",
    ],
    "brace syntax": [
        f"~ {{np.f2py.os.system('{PWN}')}}",
        "~ {__import__('os')}",
        "~ {x}.real",
        "~ {open('pwned', 'w')}",
        "~ {x + eval('1')}",
        "~ {x, z}",
    ],
    "left-hand side": [
        f"np.f2py.os.system('{PWN}') ~ x",
        f"c(np.f2py.os.system('{PWN}')) ~ x",
        "I(share) ~ x",
        "share.__class__ ~ x",
        f"{fullwidth('share')} ~ x",
        "share[a] ~ x",
        "log(share) ~ x",
    ],
    "structure": [
        f"~ x + z) + np.f2py.os.system('{PWN}'",
        "~ (x)(z)",
        "~ log(x)(z)",
        "~ x = np.f2py",
        "~ x ~ z",
        "~ x % z",
        "~ x // z",
        "~ !x",
        "~ I(x @ z)",
        "~ x == 1",
        "~ 'text'",
        "~ `x`(z)",
        "~ ``",
        "~ x +",
        "~ x; y",
        "~ I(x | z)",
    ],
    "other transform": [
        "~ offset(x)",
        "~ p(x, 10)",
        "~ proportion(x, 10)",
        "~ prop(x, 10)",
        "~ frobnicate(x)",
        "~ c(x, z)",
    ],
    "resource exhaustion": [
        "~ poly(x, 100000)",
        "~ I(9**9**9)",
        "~ I(x + 9**9**9**9)",
        "~ I('a' * 1000000000)",
        "~ I(g + 'a' * 10)",
        "~ " + "*".join(f"v{i}" for i in range(16)),
        "~ (" + "+".join(f"v{i}" for i in range(20)) + ")**20",
        "~ " + "(" * 300 + "x" + ")" * 300,
        "~ " + "I(" * 200 + "x" + ")" * 200,
        "~ " + " + ".join(["x"] * 3000),
        "~ bs(x, df=1000000000)",
        "~ tp(x, max_knots=100000000)",
    ],
    "control character": [
        "~ x\x00 + z",
        "~ x + z\x1b[2J",
        "~ x\x7f",
    ],
}

HOSTILE_CASES = [(cls, f) for cls, fs in HOSTILE.items() for f in fs]
assert len(HOSTILE_CASES) >= 100, len(HOSTILE_CASES)
IDS = [f"{cls}-{i}" for i, (cls, _) in enumerate(HOSTILE_CASES)]


def full(formula: str) -> str:
    """The formula with the label column on the left, as a fit stores it."""
    f = formula.strip()
    if f.startswith("~"):
        return "share " + f
    return f if "~" in f else f"share ~ {f}"


# --------------------------------------------------------------------------- fixtures


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    df = pd.DataFrame({
        "share": np.clip(1 / (1 + np.exp(-x)) + rng.normal(scale=0.05, size=n), 0.02, 0.98),
        "x": x,
        "z": rng.uniform(0.5, 2.0, size=n),
        "g": rng.choice(["a", "b", "c"], size=n),
    })
    return df


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A folder with the data, a spec and two small fits (Laplace: nothing to sample)."""
    d = tmp_path_factory.mktemp("sandbox")
    df = _data()
    df.to_csv(d / "d.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = sb.Model("share ~ x + z", df).fit(draws=40, chains=1, method="laplace",
                                               random_seed=1)
        beta = sb.Model("share ~ x", df, likelihood="beta", phi_formula="~ z").fit(
            draws=40, chains=1, method="laplace", random_seed=2)
    save_fit(wb, d / "wb.nc")
    save_fit(beta, d / "beta.nc")
    return {"dir": d, "data": df, "wb": wb, "beta": beta}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder, where a payload would write ``pwned``."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert not (tmp_path / "pwned").exists(), "a formula ran a command"


def spec_text(formula: str, *, phi=False) -> str:
    """A spec whose model ``m`` has ``formula`` (or, with ``phi``, ``phi_formula``)."""
    quoted = json.dumps(formula, ensure_ascii=False)  # a TOML basic string as well
    if phi:
        model = model_toml("m", "beta", extra=f"[models.options]\nphi_formula = {quoted}\n")
    else:
        model = model_toml("m", formula=quoted)
    return spec_toml(model, title="hostile", seed=1)


def tampered(src: Path, dst: Path, key: str, value: str) -> Path | None:
    """A copy of a fit file with one root attr replaced (None: netCDF cannot hold it)."""
    shutil.copy(src, dst)
    try:
        with h5py.File(dst, "r+") as f:
            f.attrs[key] = value
    except (ValueError, TypeError):  # e.g. embedded NUL: not storable, so not a threat
        dst.unlink()
        return None
    return dst


# --------------------------------------------------------------------------- hostile: one
# test per formula, through every entry point


@pytest.mark.parametrize(("cls", "formula"), HOSTILE_CASES, ids=IDS)
def test_hostile_formula_refused_everywhere(reliability, audit_guard, base, workdir, cls,
                                            formula):
    d = base["dir"]
    (workdir / "d.csv").write_bytes((d / "d.csv").read_bytes())
    data = base["data"]

    def count(entry):
        reliability.add("hostile_formulas", f"{entry}: {cls}")

    with audit_guard() as guard:
        # the sandbox itself, as formula and as phi formula
        with pytest.raises(FormulaError):
            check_formula(formula)
        count("check_formula")
        with pytest.raises(FormulaError):
            check_formula(formula, rhs_only=True)
        count("check_formula (phi)")

        # the Python API with the formula from an untrusted source, and even typed in
        # Python (no extra_namespace: nothing of the caller's is reachable)
        for untrusted in (True, False):
            with pytest.raises(ValueError):
                sb.Model(full(formula), data, untrusted=untrusted)
        count("Model")

        # softbayes check SPEC: formula and phi_formula
        for phi in (False, True):
            spec = workdir / "s.toml"
            spec.write_text(spec_text(formula, phi=phi), encoding="utf-8")
            err = one_error(cli("check", spec))
            assert "refused" in err or "not valid TOML" in err, err
            count("softbayes check (phi_formula)" if phi else "softbayes check")

        # softbayes fit --formula / --phi-formula: refused before the data is read
        out = workdir / "fit.nc"
        one_error(cli("fit", "d.csv", "-f", full(formula), "-o", out, "--draws", 5,
                    "--tune", 5, "--chains", 1), "--formula")
        count("softbayes fit --formula")
        one_error(cli("fit", "d.csv", "-f", "share ~ x", "-l", "beta", "--phi-formula",
                    formula, "-o", out, "--draws", 5, "--tune", 5, "--chains", 1),
                "--phi-formula")
        count("softbayes fit --phi-formula")
        assert not out.exists()

        # a fit in memory whose attrs were tampered with
        for key, fit, value in (("softbayes_formula", base["wb"], full(formula)),
                                ("softbayes_phi_formula", base["beta"], formula)):
            bad = fit.copy()
            bad.attrs = {**fit.attrs, key: value}
            with pytest.raises(FitFileError, match=key):
                sb.Model.from_fit(bad)
            with pytest.raises(FitFileError, match=key):
                sb.predict(bad)
            count(f"Model.from_fit ({key})")

        # fit files whose attrs were tampered with: load_fit, compare, report
        for key, src, value in (("softbayes_formula", d / "wb.nc", full(formula)),
                                ("softbayes_phi_formula", d / "beta.nc", formula)):
            folder = workdir / f"fits_{key}"
            folder.mkdir()
            path = tampered(src, folder / "evil.nc", key, value)
            if path is None:
                continue
            for check in (True, False):
                with pytest.raises(FitFileError, match=key) as info:
                    sb.load_fit(path, check=check)
                assert "evil.nc" in str(info.value)
            count(f"load_fit ({key})")
            one_error(cli("compare", path), "evil.nc", key)
            count(f"softbayes compare ({key})")
            shutil.copy(d / "wb.nc", folder / "good.nc")
            one_error(cli("report", folder), "evil.nc", key)
            count(f"softbayes report ({key})")
            assert sorted(p.name for p in folder.iterdir()) == ["evil.nc", "good.nc"]
    assert guard.events == []


def test_the_issue_spec_is_refused_end_to_end(reliability, base, tmp_path):
    """The reported spec, through a real ``softbayes check`` process: exit 2, no command."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "d.csv").write_bytes((base["dir"] / "d.csv").read_bytes())
    formula = "~ I(x * ('`' != 'a')) + I(z + 0 * np.f2py.os.system('id > pwned #`'))"
    (models / "s.toml").write_text(spec_text(formula), encoding="utf-8")
    (models / "p.toml").write_text(spec_text(formula, phi=True), encoding="utf-8")
    for name in ("s.toml", "p.toml"):
        proc = subprocess.run([sys.executable, "-m", "softbayes", "check", f"models/{name}"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "MPLBACKEND": "Agg"})
        assert proc.returncode == 2, proc.stderr
        assert "error:" in proc.stderr and "np.f2py.os.system" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        reliability.add("hostile_formulas", "subprocess softbayes check: backtick inside a string")
    assert not (tmp_path / "pwned").exists()
    assert not (models / "pwned").exists()


def test_tampered_fit_is_refused_end_to_end(reliability, base, tmp_path):
    """A fit whose formula attr runs a command, through a real ``softbayes compare``."""
    assert tampered(base["dir"] / "wb.nc", tmp_path / "evil.nc", "softbayes_formula",
                    "share ~ x + I(0 * np.f2py.os.system('id > pwned'))")
    proc = subprocess.run([sys.executable, "-m", "softbayes", "compare", "evil.nc"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 2, proc.stderr
    assert "evil.nc" in proc.stderr and "softbayes_formula" in proc.stderr, proc.stderr
    assert not (tmp_path / "pwned").exists()
    reliability.add("hostile_formulas", "subprocess softbayes compare: attribute chain")


# --------------------------------------------------------------------------- hypothesis

_IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_DANGER = st.sampled_from(["os", "system", "f2py", "sys", "subprocess", "popen", "__class__",
                           "__globals__", "__builtins__", "__import__", "lib", "npyio",
                           "ctypeslib", "testing", "save", "load", "remove", "rmtree"])
_ARG = st.sampled_from(["x", "'id > pwned'", "1", "z", "'`'", "g == 'a'"])


@st.composite
def attribute_chains(draw):
    """``root.a.b...(args)`` whose chain is not one of the allowed ``np.<f>``."""
    root = draw(st.sampled_from(["np", "scale", "log", "x", "I", "C", "pd", "os", "g"]))
    parts = draw(st.lists(st.one_of(_DANGER, _IDENT), min_size=1, max_size=4))
    name = ".".join([root, *parts])
    if root == "np" and len(parts) == 1 and parts[0] in SAFE_NUMPY:
        parts.append("__self__")
        name = ".".join([root, *parts])
    call = f"{name}({draw(_ARG)})"
    where = draw(st.sampled_from(["{}", "I(0 * {})", "scale({})", "x + {}", "{{{}}}",
                                  "log(abs({}))"]))
    return "~ " + where.format(call)


@st.composite
def backtick_strings(draw):
    """A backtick inside a string literal hiding a call the sandbox must still see."""
    quote = draw(st.sampled_from(["'", '"']))
    pad = draw(st.text(alphabet="`ab #", min_size=0, max_size=5))
    hidden = draw(st.sampled_from(["np.f2py.os.system('id')", "eval('1')", "open('pwned')",
                                   "x.__class__", "getattr(x, 'real')", "g[a]"]))
    return (f"~ I(x * ({quote}{pad}`{quote} != 'a')) + I(z + 0 * {hidden}) + "
            f"I(g == {quote}`{quote})")


@st.composite
def look_alikes(draw):
    """Names that NFKC-normalise to dangerous ones (fullwidth, ligatures, script letters)."""
    word = draw(st.sampled_from(["eval", "os", "exec", "open", "np.f2py", "system", "log",
                                 "scale", "getattr"]))
    swap = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    text = "".join(fullwidth(c) if s else c for c, s in zip(word, swap, strict=True))
    if text == word:
        text = fullwidth(word)
    form = draw(st.sampled_from(["~ {}(x)", "~ {}", "~ I({})", "~ x + {}(z)"]))
    return form.format(text)


@st.composite
def keyword_calls(draw):
    """Calls hidden in keyword (or parameter) arguments of allowed transforms."""
    fn, key = draw(st.sampled_from([("bs", "df"), ("bs", "knots"), ("poly", "degree"),
                                    ("C", "levels"), ("C", "contrast"), ("cr", "df"),
                                    ("scale", "out"), ("log", "where"), ("T", "ref"),
                                    ("np.round", "decimals"), ("cc", "period")]))
    inner = draw(st.sampled_from(["np.f2py.os.system('id')", "eval('3')", "I(x)",
                                  "open('pwned')", "x", "scale(x)", "Treatment(x)",
                                  "abs(np.f2py)", "getattr(x, 'y')"]))
    positional = draw(st.booleans()) and key in ("df", "degree", "contrast")
    arg = inner if positional else f"{key}={inner}"
    return f"~ {fn}(x, {arg})"


GENERATED = settings(max_examples=int(os.environ.get("SOFTBAYES_SANDBOX_EXAMPLES", "60")),
                     deadline=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("strategy", [attribute_chains, backtick_strings, look_alikes,
                                      keyword_calls],
                         ids=["attribute chain", "backtick string", "look-alike",
                              "call in a keyword"])
def test_generated_hostile_formulas(reliability, audit_guard, base, workdir, strategy):
    data = base["data"]
    fit = base["wb"]
    name = strategy.__name__

    @GENERATED
    @given(strategy())
    def run(formula):
        with audit_guard():
            with pytest.raises(FormulaError):
                check_formula(formula)
            with pytest.raises(ValueError):
                sb.Model(full(formula), data, untrusted=True)
            bad = fit.copy()
            bad.attrs = {**fit.attrs, "softbayes_formula": full(formula)}
            with pytest.raises(FitFileError, match="softbayes_formula"):
                sb.Model.from_fit(bad)
            one_error(cli("fit", "d.csv", "-f", full(formula), "-o", "f.nc"), "--formula")
        reliability.add("hostile_formulas", f"generated ({name}): check_formula, Model, "
                                            "from_fit, softbayes fit")

    run()


# --------------------------------------------------------------------------- legitimate

#: Every kind of formula the other tests, the examples and the shipped specs use.
LEGIT = [
    "x", "x + z", "0 + x + z", "x - 1", "1", "log(z)", "x + log(z)", "np.log(z)",
    "scale(x)", "center(x) + standardize(z)", "I(x**2)", "{x**2}", "I(x * z)", "C(g)",
    "g", "x:g", "x*g", "poly(x, 2)", "poly(z, degree=3)", "bs(x, df=3)",
    pytest.param("cr(x, df=4)", marks=pytest.mark.skipif(
        transform_parameters("cr") is None, reason="cr() is a transform of formulae >= 0.9")),
    "x + (1|g)", "x + (x|g)", "(1|g) + (0 + x|g)", "np.sqrt(z) + np.exp(x)",
    "logit(expit(x))", "np.clip(x, -1, 1)", "np.maximum(x, 0)", "np.round(x, 1)",
    "np.round(x, decimals=2)", "I(g == 'a')", "C(g, Treatment('b'))", "C(g, Sum)",
    "C(g, contrast=Treatment)", "T(g, 'c')", "S(g)", "binary(g, 'a')", "log1p(z) + sqrt(z)",
    "`my col` + x", "scale(`my col`)", "I(-x + 2 * z / 3)", "x + I(z ** -1)",
    "abs(x) + square(x) + expm1(x) + log2(z) + log10(z)", "np.tanh(x) + np.arcsinh(x)",
    "np.floor(z) + np.ceil(z) + np.cbrt(x)", "I(2 ** x)", "I(x > 0)", "I((x + z) ** 2)",
    "scale(log(z))", "center(I(x**2))", "x + z + x:z", "(x + z)**2", "x/g",
]


def _formulae_reference(rhs, data):
    """formulae with a plain namespace holding the numpy module: the old evaluation."""
    from scipy import special

    ns = {"np": np, "log": np.log, "log1p": np.log1p, "log2": np.log2, "log10": np.log10,
          "exp": np.exp, "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs,
          "square": np.square, "logit": special.logit, "expit": special.expit}
    return formulae.design_matrices(rhs, data, na_action="error", env=Environment([ns]))


@pytest.mark.parametrize("rhs", LEGIT)
def test_legitimate_formulas_pass_and_build_the_same_design(reliability, audit_guard, rhs):
    data = _data(60, seed=3).rename(columns={"z": "z"})
    data["my col"] = data["z"] * 2
    with audit_guard():
        check_formula(f"share ~ {rhs}", columns=data.columns)
        check_formula(f"~ {rhs}")
        check_formula(rhs, rhs_only=True)
        design = LinearDesign(rhs, data, DEFAULT_NAMESPACE)
    ref = _formulae_reference(rhs, data)
    if ref.common is not None:
        np.testing.assert_array_equal(design.X, np.asarray(ref.common.design_matrix))
    if ref.group is not None:
        assert [g.name for g in design.group_terms] == list(ref.group.terms)
        np.testing.assert_array_equal(np.hstack([p[0] for p in design.group_parts_train]),
                                      np.hstack([np.asarray(t.expr.eval_new_data(data))
                                                 .reshape(len(data), -1)
                                                 if hasattr(t.expr, "eval_new_data")
                                                 else np.ones((len(data), 1))
                                                 for t in ref.group.terms.values()]))
    reliability.add("legit_formulas", rhs)


def test_legitimate_formulas_in_specs_and_fits(reliability, base, workdir):
    """A spec with legitimate formulas checks OK; a fit with them loads and predicts."""
    (workdir / "d.csv").write_bytes((base["dir"] / "d.csv").read_bytes())
    for rhs in ("scale(x) + np.log(z) + C(g)", "poly(x, 2) + bs(z, df=3)", "x + (1|g)",
                "I(x**2) + {z * 2}"):
        (workdir / "s.toml").write_text(spec_text(f"~ {rhs}"), encoding="utf-8")
        result = cli("check", workdir / "s.toml")
        assert result.exit_code == 0, result.output
        reliability.add("legit_formulas", f"softbayes check: {rhs}")
    (workdir / "p.toml").write_text(spec_text("~ scale(z) + np.log(z)", phi=True),
                                    encoding="utf-8")
    assert cli("check", workdir / "p.toml").exit_code == 0
    for name in ("wb", "beta"):
        fit = sb.load_fit(base["dir"] / f"{name}.nc")
        np.testing.assert_allclose(sb.predict(fit).values, sb.predict(base[name]).values)


# --------------------------------------------------------------------------- the namespace


def test_namespace_holds_no_module_and_no_way_out():
    import types

    for ns in (DEFAULT_NAMESPACE, safe_namespace()):
        assert not any(isinstance(v, types.ModuleType) for v in ns.values())
        npx = ns["np"]
        for attr in ("f2py", "lib", "os", "__class__", "__dict__", "__getattribute__",
                     "__reduce__", "_functions", "__init__"):
            with pytest.raises(AttributeError):
                getattr(npx, attr)
        with pytest.raises(AttributeError):
            npx.log = print
        assert npx.log is np.log and sorted(dir(npx)) == sorted(SAFE_NUMPY)
    with pytest.raises(TypeError):
        DEFAULT_NAMESPACE["np"] = np  # read-only


def test_formulae_cannot_reach_a_module_even_unchecked(audit_guard):
    """Defence in depth: formulae itself, without the sandbox, finds no np.f2py to call."""
    data = _data()
    env = Environment([dict(DEFAULT_NAMESPACE)])
    with audit_guard():
        with pytest.raises(Exception, match="f2py"):
            formulae.design_matrices("I(0 * np.f2py.os.system('id'))", data, env=env)
        # and every design built by softbayes passes the sandbox, whoever builds it
        with pytest.raises(FormulaError, match="f2py"):
            LinearDesign("I(0 * np.f2py.os.system('id'))", data, DEFAULT_NAMESPACE)


# --------------------------------------------------------------------------- the Python API


def test_python_users_still_pass_their_own_functions(base, tmp_path):
    data = base["data"]

    def cube(v):
        return np.asarray(v) ** 3

    helpers = type("Helpers", (), {"cube": staticmethod(cube)})()
    m = sb.Model("share ~ cube(x)", data, extra_namespace={"cube": cube})
    np.testing.assert_allclose(m.description.main.design.X[:, 1], data["x"] ** 3)
    # attributes of what the caller passes: fine for a formula typed in Python
    m2 = sb.Model("share ~ helpers.cube(x) + np.sinc(z)", data,
                  extra_namespace={"helpers": helpers, "np": np})
    np.testing.assert_allclose(m2.description.main.design.X[:, 1], data["x"] ** 3)
    # ... but not without passing the module: np is the frozen allow-list
    with pytest.raises(FormulaError, match=r"np\.sinc"):
        sb.Model("share ~ np.sinc(z)", data)

    # a fit of a formula with the caller's function: from_fit needs the function again, by
    # name only; an attribute chain read from a file is refused even if the root is passed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit(draws=30, chains=1, method="laplace", random_seed=1)
    with pytest.raises(FitFileError, match="cube"):
        sb.Model.from_fit(fit)
    assert sb.Model.from_fit(fit, extra_namespace={"cube": cube}).formula == "share ~ cube(x)"
    path = save_fit(fit, tmp_path / "cube.nc")
    with pytest.raises(FitFileError, match="cube"):
        sb.load_fit(path)
    sb.load_fit(path, extra_namespace={"cube": cube})
    evil = fit.copy()
    evil.attrs = {**fit.attrs, "softbayes_formula": "share ~ helpers.cube(x)"}
    with pytest.raises(FitFileError, match=r"helpers\.cube"):
        sb.Model.from_fit(evil, extra_namespace={"helpers": helpers})


# --------------------------------------------------------------------------- counts p(k, m)

COUNTS_REFUSED = [
    "p(k) ~ x", "p(k, m, 3) ~ x", "p(k, 0) ~ x", "p(k, -3) ~ x", "p(k, 2.5) ~ x",
    "p(k, True) ~ x", "p(k, 'm') ~ x", "p(k, m + 1) ~ x", "p(log(k), m) ~ x",
    "p(k, np.f2py) ~ x", "p(k, m=m) ~ x", "p(p(k, m), m) ~ x", "c(p(k, m)) ~ x",
    "p(k, m)[1] ~ x", "p(k, m).real ~ x", "np.p(k, m) ~ x", "P(k, m) ~ x",
    "p(k, 10**9) ~ x", "p(k.__class__, m) ~ x", "p(k, m) + z ~ x",
]


def test_counts_response_is_the_only_new_form():
    for formula in ("p(k, m) ~ x", "p(`k k`, `m m`) ~ x + (1|g)", "p(k, 5) ~ 1"):
        check_formula(formula, columns=["k", "m", "x", "g", "k k", "m m"])
    for formula in COUNTS_REFUSED:
        with pytest.raises(FormulaError):
            check_formula(formula, columns=["k", "m", "x"])
    # p stays refused everywhere but as the response: on the right, in phi_formula
    for formula in ("k ~ p(k, m)", "k ~ x + p(x, 10)", "~ I(p(k, m))"):
        with pytest.raises(FormulaError, match="'p' is not allowed"):
            check_formula(formula, columns=["k", "m", "x"])
    with pytest.raises(FormulaError, match="no left-hand side"):
        check_formula("p(k, m) ~ x", rhs_only=True)


def test_counts_rows_are_validated_with_their_index():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"k": rng.integers(0, 4, 30), "m": np.full(30, 4), "x": rng.normal(size=30)})
    sb.Model("p(k, m) ~ x", df, likelihood="beta_binomial")
    sb.Model("p(k, 4) ~ x", df, likelihood="binomial")
    cases = {
        "outside 0 <= k <= m": df.assign(k=df.k.where(df.index != 7, 5)),
        "fewer than 1 trial": df.assign(m=df.m.where(df.index != 4, 0)),
        "not whole": df.assign(k=df.k.astype(float).where(df.index != 9, 1.5)),
        "whole numbers": df.assign(m=df.m.astype(str)),
    }
    for why, bad in cases.items():
        with pytest.raises(ValueError, match=why):
            sb.Model("p(k, m) ~ x", bad, likelihood="beta_binomial")
    with pytest.raises(ValueError, match=r"index 7"):
        sb.Model("p(k, m) ~ x", cases["outside 0 <= k <= m"], likelihood="weighted_bernoulli")
    with pytest.raises(ValueError, match="not in the data"):
        sb.Model("p(k, trials) ~ x", df, likelihood="beta_binomial")
    with pytest.raises(ValueError, match=r"write the response as 'p\(k, m\)"):
        sb.Model("k ~ x", df, likelihood="beta_binomial")
