"""Tests of the report folder lock: exclusive across processes, never through a symlink."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from softbayes.app.files import ReportBusyError, ReportTargetError, report_lock

_HOLD = """
import sys, time
from pathlib import Path
from softbayes.app.files import report_lock
with report_lock(Path(sys.argv[1]), "x"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_lock_held_by_another_process_fails_at_once(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ReportBusyError, match="another softbayes run"):
            with report_lock(tmp_path, "x"):
                pass
        with report_lock(tmp_path, "y"):  # another report is independent
            pass
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    with report_lock(tmp_path, "x") as path:  # released when the holder exits
        assert path == tmp_path / ".x.lock"
    assert path.is_file()  # left in place, so later runs share the inode


def test_lock_that_is_a_symlink_is_refused_and_target_untouched(tmp_path):
    target = tmp_path / "thesis.txt"
    target.write_bytes(b"the user's thesis\n")
    (tmp_path / ".x.lock").symlink_to(target)
    with pytest.raises(ReportTargetError, match=r"\.x\.lock"):
        with report_lock(tmp_path, "x"):
            pass
    assert target.read_bytes() == b"the user's thesis\n"
    assert (tmp_path / ".x.lock").is_symlink()


def test_dangling_symlink_lock_creates_nothing(tmp_path):
    (tmp_path / ".x.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ReportTargetError, match="plain file"):
        with report_lock(tmp_path, "x"):
            pass
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_lock_that_is_not_a_plain_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / ".x.lock")
    (tmp_path / ".y.lock").mkdir()
    for name in ("x", "y"):
        with pytest.raises(ReportTargetError, match="plain file"):
            with report_lock(tmp_path, name):
                pass


def test_existing_lock_file_keeps_its_content(tmp_path):
    (tmp_path / ".x.lock").write_bytes(b"someone else's file\n")
    with report_lock(tmp_path, "x"):
        pass
    assert (tmp_path / ".x.lock").read_bytes() == b"someone else's file\n"
