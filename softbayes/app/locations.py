"""Where specs and reports are: the shipped demo specs, bare spec names, the reports folder."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from softbayes.app.spec import SpecError

__all__ = ["default_reports_dir", "demo_spec_path", "resolve_spec_path"]


def _repo_root() -> Path | None:
    """The source checkout holding this package (``models/`` next to ``softbayes/``)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "models").is_dir() and (root / "pyproject.toml").is_file() else None


def demo_spec_path(name: str = "star98") -> Path:
    """``models/<name>.toml`` of the checkout, else the copy shipped in the package."""
    root = _repo_root()
    if root is not None and (root / "models" / f"{name}.toml").is_file():
        return root / "models" / f"{name}.toml"
    shipped = files("softbayes.app") / "specs" / f"{name}.toml"
    return Path(str(shipped))


def default_reports_dir(spec_path: Path) -> Path:
    """``reports/`` next to the spec's ``models/`` folder, else ``./reports``.

    A shipped spec (inside the installed package) reports to ``./reports`` of the current
    folder, or to the checkout's ``reports/`` when run from a source checkout.
    """
    spec_path = Path(spec_path).resolve()
    package = Path(__file__).resolve().parents[1]
    if spec_path.is_relative_to(package):
        root = _repo_root()
        return (root / "reports") if root is not None else Path.cwd() / "reports"
    if spec_path.parent.name == "models":
        return spec_path.parent.parent / "reports"
    return Path.cwd() / "reports"


def resolve_spec_path(arg: str) -> Path:
    """A spec path, or a bare name looked up in ``./models``, the checkout, the package."""
    p = Path(arg)
    if p.is_file():
        return p
    if p.suffix == "" and os.sep not in arg and "/" not in arg:
        for cand in (Path("models") / f"{arg}.toml",):
            if cand.is_file():
                return cand
        shipped = demo_spec_path(arg)
        if shipped.is_file():
            return shipped
    raise SpecError(f"spec file not found: {arg}")
