"""The ``softbayes`` command (also ``python -m softbayes``).

``softbayes run SPEC``      fit every candidate of a spec, compare, write ``reports/<name>/``
``softbayes demo``          the main job: ``run`` on the built-in ``models/star98.toml``
``softbayes check SPEC``    validate a spec and its data without fitting
``softbayes fit DATA ...``  fit one model, save the fit (netCDF)
``softbayes compare FIT..`` compare saved fits (text; ``--out DIR`` writes a report)
``softbayes report DIR``    (re)write a report from the fits in a folder
``softbayes datasets``      list the built-in data sets

Bad input exits with status 2 and a one-paragraph message (``--debug`` shows the traceback);
other failures exit with 1, an interrupt with 130. The previous report is never damaged.
"""

from __future__ import annotations

import errno
import json
import os
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

from softbayes.terms.families import family_class, family_names

app = typer.Typer(
    name="softbayes",
    help="Bayesian classifiers on soft labels: fit candidate models from a spec, check and "
         "compare them, and write a report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_STATE = {"debug": False}

DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", metavar="N", help="Fit on a local Dask cluster of N worker processes "
                                   "(default: the spec's [compute] workers, else serially).")]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", metavar="ADDRESS", help="Fit on the Dask scheduler at ADDRESS, e.g. "
                                           "tcp://host:8786 (its workers need softbayes).")]


def _echo(msg: str, nl: bool = True) -> None:
    typer.echo(msg, err=True, nl=nl)


def _fail(err: BaseException, code: int) -> None:
    msg = str(err).strip() or type(err).__name__
    msg = " ".join(msg.split())  # one paragraph
    _echo(f"error: {msg}")
    if code == 1:
        _echo("(run with --debug for the traceback)")
    raise typer.Exit(code)


_PATH_ERRNOS = frozenset({
    errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EACCES, errno.EPERM,
    errno.ELOOP, errno.EEXIST, errno.ENOTEMPTY, errno.EROFS, errno.EINVAL,
})


def _interrupted():
    """Say that nothing was written, and exit with 130 (128 + SIGINT)."""
    _echo("\ninterrupted: nothing was replaced (the previous report is unchanged).")
    raise typer.Exit(130) from None


def _guard(fn, debug: bool):
    """Run ``fn`` turning exceptions into a short message and an exit status."""
    try:  # these imports load most of softbayes: a Ctrl-C may land here too
        from softbayes.app.files import ReportBusyError
        from softbayes.app.spec import SpecError
    except KeyboardInterrupt:
        _interrupted()

    debug = debug or _STATE["debug"] or bool(os.environ.get("SOFTBAYES_DEBUG"))
    try:
        return fn()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _interrupted()
    except (SpecError, ValueError, FileNotFoundError, ReportBusyError, KeyError,
            TypeError) as err:
        if debug:
            raise
        _fail(err, 2)
    except OSError as err:
        # A path the user gave that the OS refuses (too long, a folder, no permission, ...)
        # is bad input: name the file. Other OS failures (disk full, I/O) stay exit 1.
        if debug:
            raise
        if err.errno in _PATH_ERRNOS and err.filename is not None:
            _fail(ValueError(f"file {str(err.filename)!r}: {err.strerror or err}."), 2)
        _fail(RuntimeError(f"{type(err).__name__}: {err}"), 1)
    except Exception as err:
        if debug:
            raise
        _fail(RuntimeError(f"{type(err).__name__}: {err}"), 1)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"softbayes {version('softbayes')}")
        raise typer.Exit()


@app.callback()
def main(
    debug: DebugOpt = False,
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the installed version and exit.")] = False,
) -> None:
    """softbayes: soft-label Bayesian classifiers, model comparison and reports."""
    _STATE["debug"] = debug
    os.environ.setdefault("MPLBACKEND", "Agg")


# --------------------------------------------------------------------------- run / demo


@app.command(short_help="Fit, compare and report every model of a spec.")
def run(
    spec: Annotated[str, typer.Argument(help="The spec: models/<name>.toml (or a bare name "
                                             "found in ./models).")],
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run only this candidate model (repeat for several).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Refit even if cached fits match.")]
    = False,
    reports_dir: Annotated[Path | None, typer.Option(
        "--reports-dir", help="Folder of the reports (default: reports/ next to models/).")]
    = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Fit every candidate model of SPEC, compare them, write reports/<name>/."""
    from softbayes.app.locations import resolve_spec_path
    from softbayes.app.runner import check_compute, run_spec

    def go():
        check_compute(workers, scheduler)
        path = resolve_spec_path(spec)
        run_spec(path, reports_dir=reports_dir, only=only or None, force=force, echo=_echo,
                 workers=workers, scheduler=scheduler)

    _guard(go, debug)


@app.command(short_help="The main job: run models/star98.toml.")
def demo(
    force: Annotated[bool, typer.Option("--force", help="Refit even if cached fits match.")]
    = False,
    reports_dir: Annotated[Path | None, typer.Option(
        "--reports-dir", help="Folder of the reports (default: the checkout's reports/ or "
                              "./reports).")] = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    debug: DebugOpt = False,
) -> None:
    """The main job: compare weighted Bernoulli, Continuous Bernoulli, Beta and hard-label
    Bernoulli regressions on the STAR98 math shares (models/star98.toml)."""
    from softbayes.app.locations import demo_spec_path
    from softbayes.app.runner import check_compute, run_spec

    def go():
        check_compute(workers, scheduler)
        run_spec(demo_spec_path("star98"), reports_dir=reports_dir, force=force, echo=_echo,
                 workers=workers, scheduler=scheduler)

    _guard(go, debug)


@app.command(short_help="Validate a spec and its data (no fitting).")
def check(
    spec: Annotated[str, typer.Argument(help="The spec to validate.")],
    only: Annotated[list[str] | None, typer.Option("--only", help="Check only this model.")]
    = None,
    debug: DebugOpt = False,
) -> None:
    """Validate SPEC: its keys and types, the data file, the columns, every model's formula,
    priors and options. Nothing is fitted."""
    from softbayes.app.locations import resolve_spec_path
    from softbayes.app.spec import check_spec, load_spec

    def go():
        s = load_spec(resolve_spec_path(spec))
        data, built = check_spec(s, only or None)
        typer.echo(f"{s.path}: OK -- {s.data.describe()}, {len(data)} rows; "
                   f"{len(built)} model(s):")
        for name, (ms, model, msgs) in built.items():
            typer.echo(f"  {name}: {ms.likelihood}, {model.formula}")
            for m in msgs:
                typer.echo(f"    note: {m}")

    _guard(go, debug)


# --------------------------------------------------------------------------- script use


def _read_data(arg: str):
    from softbayes.app.files import path_problem
    from softbayes.app.spec import read_table
    from softbayes.data.datasets import load_dataset

    if arg.startswith("builtin:"):
        return load_dataset(arg.split(":", 1)[1])
    p = Path(arg)
    why = path_problem(p)
    if why:
        raise ValueError(f"data file {arg!r}: {why}.")
    if p.is_dir():
        raise ValueError(f"data file {arg!r} is a folder; give a CSV or Parquet file.")
    if not p.is_file():
        raise FileNotFoundError(f"data file not found: {arg} (or use builtin:NAME, see "
                                "'softbayes datasets').")
    return read_table(p)


def _check_out_file(out: Path) -> None:
    """Refuse an output file the OS could not create, before the (slow) fit rather than after."""
    from softbayes.app.files import path_problem

    why = path_problem(out)
    if why is None and out.is_dir():
        why = "is a folder; give a file name such as fit.nc"
    if why is None:
        # The first folder on the way that exists must let us create what is missing.
        parent = out.absolute().parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            why = f"{parent} is not a folder"
        elif not os.access(parent, os.W_OK | os.X_OK):
            why = f"no permission to write in {parent}"
    if why:
        raise ValueError(f"--out file {str(out)!r}: {why}.")


def _or(words) -> str:
    """``a, b or c``."""
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _taking(option: str) -> str:
    """The families whose models take ``option`` (for the help of the family options)."""
    return ", ".join(n for n in family_names() if option in family_class(n).model_options())


def _parse_priors(items):
    priors = {}
    for item in items or []:
        term, sep, spec = item.partition("=")
        if not sep:
            raise ValueError(f"--prior {item!r}: write TERM='{{\"dist\": \"Normal\", \"mu\": 0, "
                             "\"sigma\": 1}'.")
        try:
            priors[term.strip()] = json.loads(spec)
        except json.JSONDecodeError as err:
            raise ValueError(f"--prior {item!r}: the part after '=' is not JSON ({err}).") \
                from None
    return priors


@app.command(short_help="Fit one model and save the fit (.nc).")
def fit(
    data: Annotated[str, typer.Argument(help="CSV/Parquet file, or builtin:NAME.")],
    formula: Annotated[str, typer.Option("--formula", "-f", help="'labels ~ predictors'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the fit (.nc).")],
    likelihood: Annotated[str, typer.Option(
        "--likelihood", "-l", help=_or(family_names()) + ".")] = "weighted_bernoulli",
    weights: Annotated[str | None, typer.Option(help="Weights column.")] = None,
    prior: Annotated[list[str] | None, typer.Option(
        "--prior", help="TERM=JSON, e.g. x='{\"dist\": \"Normal\", \"mu\": 0, \"sigma\": 1}'.")]
    = None,
    squeeze: Annotated[bool | None, typer.Option(
        "--squeeze/--no-squeeze", help=f"{_taking('squeeze')}: squeeze labels at 0 or 1.")]
    = None,
    threshold: Annotated[float | None, typer.Option(
        help=f"{_taking('threshold')}: cut of the labels.")] = None,
    phi_formula: Annotated[str | None, typer.Option(
        help=f"{_taking('phi_formula')}: formula of log phi.")] = None,
    draws: Annotated[int, typer.Option(min=1)] = 1000,
    tune: Annotated[int, typer.Option(min=0)] = 1000,
    chains: Annotated[int, typer.Option(min=1)] = 4,
    seed: int = 1,
    sampler: Annotated[str | None, typer.Option(help="nutpie (default), pymc, ...")] = None,
    debug: DebugOpt = False,
) -> None:
    """Fit one model to DATA and save the fit (netCDF; read with softbayes.load_fit)."""

    def go():
        from softbayes.app.files import save_fit_atomically
        from softbayes.app.runner import quiet_libraries
        from softbayes.io.attrs import FitAttrs
        from softbayes.model import Model
        from softbayes.terms.sandbox import check_formula

        # command-line formulas are data, not code: refused before anything is read
        check_formula(formula, where="--formula")
        if phi_formula is not None:
            check_formula(phi_formula, rhs_only=True, where="--phi-formula")
        quiet_libraries()
        _check_out_file(out)
        df = _read_data(data)
        kw = {}
        if squeeze is not None:
            kw["squeeze"] = squeeze
        if threshold is not None:
            kw["threshold"] = threshold
        if phi_formula is not None:
            kw["phi_formula"] = phi_formula
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            model = Model(formula, df, likelihood=likelihood, priors=_parse_priors(prior),
                          weights=weights, untrusted=True, **kw)
        for w in caught:
            _echo(f"note: {w.message}")
        _echo(f"fitting {likelihood}: {model.formula} ({len(df)} rows, {chains} chains x "
              f"{draws} draws) ...", nl=False)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # printed once each below
            result = model.fit(draws=draws, tune=tune, chains=chains, random_seed=seed,
                               sampler=sampler, progressbar=False)
        secs = time.perf_counter() - t0
        FitAttrs(cli_fit_seconds=float(secs)).write(result)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_fit_atomically(result, out.resolve())
        _echo(f" done in {secs:.1f} s -> {out}")
        for msg in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
            _echo(f"  warning: {msg}")

    _guard(go, debug)


def _load_fits(paths, names=None):
    from softbayes.io.fits import load_fit

    if names and len(names) != len(paths):
        raise ValueError(f"--name given {len(names)} times for {len(paths)} fits.")
    fits = {}
    for i, p in enumerate(paths):
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"fit not found: {p}")
        name = names[i] if names else p.stem
        base, k = name, 2
        while name in fits:
            name, k = f"{base}_{k}", k + 1
        fits[name] = load_fit(p, check=False)
    return fits


FallbackOpt = Annotated[str, typer.Option(
    "--kfold-fallback", help="When PSIS-LOO is unreliable: all, fit or none (K-fold refits "
                             "are slow).")]


def _compare_kwargs(kfold_fallback: str) -> dict:
    if kfold_fallback not in ("all", "fit", "none"):
        raise ValueError(f"--kfold-fallback must be all, fit or none, got {kfold_fallback!r}.")
    return {"kfold_fallback": None if kfold_fallback == "none" else kfold_fallback}


def _report_from_fits(fits, target: Path, *, title: str, source_fits: dict | None = None,
                      kfold_fallback="none", spec_text=None):
    from softbayes.app.files import link_or_copy, write_report_atomically
    from softbayes.app.runner import build_and_write, fit_slug

    with write_report_atomically(target) as tmp:
        fit_files = {}
        if source_fits:
            (tmp / "fits").mkdir()
            taken: set = set()
            for name, src in source_fits.items():
                stem = Path(src).stem
                slug = stem if stem not in taken else fit_slug(name, taken)
                taken.add(slug)
                link_or_copy(Path(src), tmp / "fits" / f"{slug}.nc")
                fit_files[name] = f"fits/{slug}.nc"
        build_and_write(fits, tmp, title=title, name=target.name,
                        data_source="Training data stored in the fits.",
                        compare_kwargs=_compare_kwargs(kfold_fallback), echo=_echo,
                        run_info={"fit_files": fit_files})
        if spec_text:
            (tmp / "spec.toml").write_text(spec_text, encoding="utf-8")
    _echo(f"report: {target / 'index.html'}")


@app.command(short_help="Compare saved fits (text, or a report with --out).")
def compare(
    fits: Annotated[list[Path], typer.Argument(help="Saved fits (.nc) of the same labels.")],
    name: Annotated[list[str] | None, typer.Option(
        "--name", help="Model names, one per fit, in order (default: file names).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Also write a report into this folder (new, empty or a softbayes "
                      "report).")] = None,
    kfold_fallback: FallbackOpt = "none",
    debug: DebugOpt = False,
) -> None:
    """Compare saved fits: ELPD per comparable group, common-scale scores, diagnostics."""

    def go():
        from softbayes.analysis.comparison import compare as compare_fits
        from softbayes.app.files import check_report_target

        if out is not None:  # refuse before the (slow) comparison
            check_report_target(out, what="--out")
        loaded = _load_fits(fits, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cmp = compare_fits(loaded, **_compare_kwargs(kfold_fallback))
        typer.echo(str(cmp))
        if out is not None:
            _report_from_fits(loaded, out.resolve(), title=f"Model comparison: {out.name}",
                              source_fits=dict(zip(loaded, fits, strict=True)),
                              kfold_fallback=kfold_fallback)

    _guard(go, debug)


@app.command(short_help="(Re)write a report from saved fits.")
def report(
    folder: Annotated[Path, typer.Argument(help="A report folder (re-rendered in place) or a "
                                                "folder of .nc fits.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Report folder: new, empty or a softbayes report (default: FOLDER "
                      "itself if softbayes wrote it, else FOLDER/report).")] = None,
    title: Annotated[str | None, typer.Option(help="Report title.")] = None,
    kfold_fallback: FallbackOpt = "none",
    debug: DebugOpt = False,
) -> None:
    """(Re)write a report from saved fits: FOLDER/fits/*.nc or FOLDER/*.nc."""

    def go():
        from softbayes.app.files import REPORT_MARKER, check_report_target, is_report_folder

        if not folder.is_dir():
            raise FileNotFoundError(f"not a folder: {folder}")
        is_report = (folder / "fits").is_dir()
        paths = sorted((folder / "fits" if is_report else folder).glob("*.nc"))
        if not paths:
            raise ValueError(f"no .nc fits in {folder}{'/fits' if is_report else ''}.")
        meta = {}
        if (folder / "run.json").is_file():
            meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        names = None
        files = meta.get("fit_files") or {}
        if files:  # the run's names and order
            order = {Path(v).name: i for i, v in enumerate(files.values())}
            paths.sort(key=lambda p: (order.get(p.name, len(order)), p.name))
            by_file = {Path(v).name: k for k, v in files.items()}
            names = [by_file.get(p.name, p.stem) for p in paths]
        loaded = _load_fits(paths, names)
        # Only a folder softbayes wrote is re-rendered in place: the new report replaces it.
        in_place = is_report and is_report_folder(folder)
        if is_report and not in_place and out is None:
            raise ValueError(
                f"{folder} has a fits/ folder but is not a report folder softbayes created (no "
                f"{REPORT_MARKER} marker), so it is not re-rendered in place: that would "
                f"replace everything in it. Write the report to a new folder: softbayes report "
                f"{folder} --out NEW_FOLDER.")
        target = check_report_target(
            out or (folder if in_place else folder / "report"),
            what="--out" if out is not None else "report folder")
        spec_text = None
        if (folder / "spec.toml").is_file():
            spec_text = (folder / "spec.toml").read_text(encoding="utf-8")
        _report_from_fits(loaded, target, title=title or meta.get("title") or folder.name,
                          source_fits=dict(zip(loaded, paths, strict=True)),
                          kfold_fallback=kfold_fallback, spec_text=spec_text)

    _guard(go, debug)


@app.command(short_help="List the built-in data sets.")
def datasets() -> None:
    """List the built-in data sets (usable as [data] builtin = NAME or builtin:NAME)."""
    from softbayes.data.datasets import BUILTIN_DATASETS

    for ds in BUILTIN_DATASETS.values():
        typer.echo(f"{ds.name}: {ds.description}")
        typer.echo(f"    labels: {', '.join(ds.labels)}; suggested weights: {ds.weights}")
