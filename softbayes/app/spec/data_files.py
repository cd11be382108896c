"""Reading a spec's data file: paths kept inside the spec's folder, safe CSV separators,
unique column names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from softbayes.app.files import path_problem

__all__ = ["SEPARATORS", "SEPARATOR_HINT", "data_path_inside", "read_table"]

#: The CSV separators a spec (``[data] sep``) or :func:`read_table` accepts. pandas reads any
#: other separator longer than one character as a regular expression with its Python engine,
#: and a pattern such as ``(a+)+b`` backtracks for ever on a long line; these are read by
#: pandas' C engine in linear time (``\s+``: runs of spaces and tabs, handled by the C engine
#: as whitespace-delimited input, not as a regex).
SEPARATORS = (",", ";", "\t", "|", " ", ":", r"\s+")

#: What to write instead of a refused separator.
SEPARATOR_HINT = (f"use one of {', '.join(repr(s) for s in SEPARATORS)} (other separators "
                  "would be read as regular expressions, which can hang on hostile input)")


def data_path_inside(folder: Path, rel: str, err) -> Path:
    """``folder / rel``, refusing absolute paths and paths that leave ``folder``.

    ``err`` turns a message into the exception to raise; a path that is a folder, missing or
    unusable by the operating system is refused too.
    """
    if "\0" in rel:  # before resolve(), which raises a bare ValueError on it
        raise err(f"data path {rel!r}: the path holds a NUL byte.")
    p = Path(rel)
    if p.is_absolute() or rel.startswith("~"):
        raise err(f"data path {rel!r} must be relative to the spec's folder (absolute paths "
                  "are refused).")
    base = folder.resolve()
    target = (base / p).resolve()
    if not target.is_relative_to(base):
        raise err(f"data path {rel!r} points outside the spec's folder {base}; paths outside "
                  "it are refused (copy or link the data next to the spec).")
    # Only now that the path is known to stay inside the folder: ask the OS about it.
    why = path_problem(target)
    if why:
        raise err(f"data path {rel!r}: {why}.")
    if target.is_dir():
        raise err(f"data path {rel!r} is a folder, not a data file ({target}).")
    if not target.is_file():
        raise err(f"data file {rel!r} not found (looked for {target}).")
    return target


def _sep_problem(sep) -> str | None:
    return None if sep in SEPARATORS else f"separator {sep!r} is not allowed; {SEPARATOR_HINT}."


def _duplicates(names) -> list[str]:
    """Names that occur more than once (blank header cells, which pandas names
    ``Unnamed: i``, are not names and are left out)."""
    seen: dict[str, int] = {}
    for n in names:
        if isinstance(n, str) and n.strip():
            seen[n] = seen.get(n, 0) + 1
    return [n for n, k in seen.items() if k > 1]


def _header_names(file: Path, name: str, sep: str) -> list:
    """The column names as written in the file, before pandas renames duplicates (``x.1``)."""
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        return list(pq.read_schema(file).names)
    head = pd.read_csv(file, sep=sep, engine="c", header=None, nrows=1, dtype=str,
                       keep_default_na=False)
    return head.iloc[0].tolist() if len(head) else []


def _read_frame(file: Path, name: str, sep: str, on_error) -> tuple[pd.DataFrame | None, list]:
    """The frame (None if the header names a column twice) and the header's names."""
    try:
        if name.endswith((".parquet", ".pq")):
            names = _header_names(file, name, sep)  # before pandas, which fails on duplicates
            df = None if _duplicates(names) else pd.read_parquet(file)
        else:
            # The C engine never treats the separator as a regular expression.
            df = pd.read_csv(file, sep=sep, engine="c")
            names = _header_names(file, name, sep) if df.shape[1] else []
    except ImportError as err:
        raise on_error(f"cannot read {file.name}: {err}") from None
    except Exception as err:
        raise on_error(f"cannot read {file.name}: {type(err).__name__}: {err}") from None
    return df, names


def read_table(file: Path, *, sep: str = ",", on_error=None) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.tsv``, ``.txt``, optionally gzipped) or Parquet file.

    Parameters
    ----------
    file : Path
        The file; its extension chooses the format.
    sep : str, default ","
        CSV separator, one of :data:`SEPARATORS` (``.tsv`` files always use a tab).
    on_error : callable, optional
        ``message -> exception`` to raise (default :class:`ValueError`).

    Raises
    ------
    ValueError
        (or what ``on_error`` makes) naming the file: unreadable, unknown format, a separator
        outside :data:`SEPARATORS`, or a column name used twice in the header.
    """
    on_error = on_error or (lambda msg: ValueError(msg))
    name = file.name.lower()
    why = path_problem(file) or _sep_problem(sep)
    if why:
        raise on_error(f"data file {file.name!r}: {why}")
    parquet = name.endswith((".parquet", ".pq"))
    if not parquet and not name.endswith((".tsv", ".tsv.gz", ".csv", ".csv.gz", ".txt")):
        raise on_error(f"data file {file.name!r}: unknown format; use .csv, .tsv or .parquet.")
    if name.endswith((".tsv", ".tsv.gz")):
        sep = "\t"
    df, names = _read_frame(file, name, sep, on_error)
    dup = _duplicates(names) or (_duplicates(map(str, df.columns)) if df is not None else [])
    if dup:
        where = "; ".join(
            f"{d!r} in columns {', '.join(str(i + 1) for i, n in enumerate(names) if n == d)}"
            for d in dup)
        raise on_error(f"data file {file.name!r}: column name(s) {dup} occur more than once in "
                       f"the header ({where}); column names must be unique: rename or drop the "
                       "duplicates.")
    return df
