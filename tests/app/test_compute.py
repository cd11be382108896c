"""Where a spec's fits run: the ``[compute]`` table, and ``--workers`` / ``--scheduler``.

A spec may set only a local ``workers`` count; a scheduler address in a spec is refused
(Dask's protocol unpickles what it receives, and a spec is untrusted). Bad values exit with
status 2 and one message naming the key or option. Nothing here starts a cluster: every bad
value is refused before any work.
"""

from __future__ import annotations

import pytest
from spec_helpers import cli, one_error, spec_toml, write

from softbayes.app.spec import SpecError, load_spec
from softbayes.backend import executor
from softbayes.backend.executor import MAX_WORKERS


def test_compute_workers_is_read(folder):
    spec = load_spec(write(folder, spec_toml() + "\n[compute]\nworkers = 2\n"))
    assert spec.compute.workers == 2
    assert load_spec(write(folder, spec_toml(), "plain.toml")).compute.workers is None


@pytest.mark.parametrize(("value", "needle"), [
    ("0", "must be from 1 to"),
    (str(MAX_WORKERS + 1), "must be from 1 to"),
    ("-3", "must be from 1 to"),
    ('"2"', "expected an integer"),
    ("true", "expected an integer"),
    ("2.5", "expected an integer"),
])
def test_bad_compute_workers_named(folder, value, needle):
    path = write(folder, spec_toml() + f"\n[compute]\nworkers = {value}\n")
    with pytest.raises(SpecError, match=needle) as info:
        load_spec(path)
    assert "compute.workers" in str(info.value)
    one_error(cli("check", path), "compute.workers", needle)


@pytest.mark.parametrize("key", ["scheduler", "address", "client"])
def test_scheduler_address_in_a_spec_is_refused(folder, key):
    path = write(folder, spec_toml() + f'\n[compute]\n{key} = "tcp://10.0.0.1:8786"\n')
    with pytest.raises(SpecError, match="not read from a spec") as info:
        load_spec(path)
    assert "--scheduler" in str(info.value) and "unpickles" in str(info.value)
    one_error(cli("run", path), f"compute.{key}", "not read from a spec")


def test_unknown_compute_key_refused(folder):
    path = write(folder, spec_toml() + "\n[compute]\nthreads = 4\n")
    one_error(cli("check", path), "compute.threads", "unknown key")


@pytest.mark.parametrize(("args", "needle"), [
    (["--workers", "0"], "--workers must be from 1"),
    (["--workers", str(MAX_WORKERS + 1)], "--workers must be from 1"),
    (["--scheduler", "not an address"], "--scheduler must be a Dask scheduler address"),
    (["--scheduler", "http://host:8786"], "--scheduler must be a Dask scheduler address"),
    (["--workers", "2", "--scheduler", "tcp://h:1"], "either --workers or --scheduler"),
])
def test_bad_compute_flags_exit_2(folder, args, needle):
    path = write(folder, spec_toml())
    one_error(cli("run", path, *args), needle)
    assert not (folder.parent / "reports").exists()  # refused before any work


def test_non_integer_workers_is_a_usage_error(folder):
    result = cli("run", write(folder, spec_toml()), "--workers", "two")
    assert result.exit_code == 2
    assert "--workers" in result.output


def test_unreachable_scheduler_exits_2(folder, monkeypatch):
    # a closed local port: nobody answers, and the run is refused as a bad argument
    monkeypatch.setattr(executor, "CONNECT_TIMEOUT", 2)
    path = write(folder, spec_toml())
    one_error(cli("run", path, "--scheduler", "tcp://127.0.0.1:1"), "no Dask scheduler answered")
    assert not (folder.parent / "reports").exists()

