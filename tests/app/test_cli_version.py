"""`softbayes --version` prints the version pip installed (the package metadata)."""

from __future__ import annotations

from importlib.metadata import version

from spec_helpers import cli


def test_version_flag_prints_the_installed_version():
    result = cli("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"softbayes {version('softbayes')}"
