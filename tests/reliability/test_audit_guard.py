"""The audit guard of conftest.py really catches what the reliability tests rely on it for.

Without these, a guard that silently watched nothing would make every "no command ran, nothing
was removed" assertion of the hostile-input tests vacuous.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess

import pytest


def test_a_command_is_refused_and_reported(audit_guard, tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(AssertionError, match=r"os\.system") as info:
        with audit_guard():
            os.system(f"touch {marker}")
    assert "audit_guard" in str(info.value)
    assert not marker.exists()  # refused on the spot, not merely noted


def test_subprocesses_are_refused_unless_allowed(audit_guard):
    with pytest.raises(AssertionError, match=r"subprocess\.Popen"):
        with audit_guard():
            subprocess.run(["true"], check=False)
    with audit_guard(programs=("true",)) as g:
        subprocess.run(["true"], check=True)
    assert g.events == []


def test_a_swallowed_violation_is_still_reported(audit_guard):
    with pytest.raises(AssertionError, match=r"os\.system"):
        with audit_guard():
            try:
                os.system("true")
            except Exception:  # what careless code under test might do
                pass


def test_removals_outside_the_test_folder_are_refused(audit_guard, tmp_path,
                                                     tmp_path_factory):
    other = tmp_path_factory.mktemp("someone_elses")
    (other / "keep.txt").write_text("keep")
    (other / "sub").mkdir()
    (other / "sub" / "keep.txt").write_text("keep")
    for action, event in ((lambda: os.remove(other / "keep.txt"), "os.remove"),
                          (lambda: os.unlink(other / "keep.txt"), "os.remove"),
                          (lambda: shutil.rmtree(other / "sub"), "shutil.rmtree"),
                          (lambda: os.rename(other / "keep.txt", tmp_path / "x"), "os.rename"),
                          (lambda: os.replace(other / "keep.txt", tmp_path / "x"),
                           "os.rename")):
        with pytest.raises(AssertionError, match=event):
            with audit_guard():
                action()
    assert (other / "keep.txt").read_text() == "keep"
    assert (other / "sub" / "keep.txt").read_text() == "keep"
    # inside the test's own folder everything is allowed
    with audit_guard() as g:
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "f").write_text("x")
        os.replace(tmp_path / "mine" / "f", tmp_path / "mine" / "g")
        shutil.rmtree(tmp_path / "mine")
    assert g.events == []


def test_relative_paths_and_symlinks_are_resolved(audit_guard, tmp_path, tmp_path_factory,
                                                  monkeypatch):
    other = tmp_path_factory.mktemp("outside")
    (other / "keep.txt").write_text("keep")
    (tmp_path / "link").symlink_to(other)
    monkeypatch.chdir(other)
    with pytest.raises(AssertionError, match=r"os\.remove"):
        with audit_guard():
            os.remove("keep.txt")  # relative to an outside working directory
    with pytest.raises(AssertionError, match=r"os\.remove"):
        with audit_guard():
            os.remove(tmp_path / "link" / "keep.txt")  # through a link in the test folder
    assert (other / "keep.txt").exists()


def test_forbidden_events(audit_guard):
    data = pickle.dumps(ValueError("x"))
    with pytest.raises(AssertionError, match=r"pickle\.find_class"):
        with audit_guard(forbid=("pickle.find_class",)):
            pickle.loads(data)
    pickle.loads(data)  # no guard, no effect


def test_no_guard_no_effect(tmp_path):
    subprocess.run(["true"], check=True)
    (tmp_path / "f").write_text("x")
    os.remove(tmp_path / "f")
