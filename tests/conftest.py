"""Shared test configuration."""

import fcntl
import json
import os
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

# Tests run on 2 cores; keep BLAS from oversubscribing when pytest-xdist runs 2 workers.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture
def folder(tmp_path):
    """A spec folder, ``tmp_path / "models"``, holding ``d.csv`` (``spec_helpers.spec_data()``)."""
    # imported here: spec_helpers imports softbayes, which not every test session needs
    from spec_helpers import spec_data

    d = tmp_path / "models"
    d.mkdir()
    spec_data().to_csv(d / "d.csv", index=False)
    return d


# --------------------------------------------------------------------------- reliability figures
# Reliability tests (tests/reliability/: properties, hostile inputs, faults, ...) count what they
# tried through the session fixture ``reliability``: ``reliability.add("properties",
# "cb_logp")`` once per hypothesis example, ``reliability.add("hostile_inputs", case)`` once
# per hostile input, ``reliability.add("faults", case)`` once per injected sampling fault.
# At the end of the session the counts go to test-artifacts/reliability-figures.json. With
# pytest-xdist every worker merges its counts into the file under a lock (same test run id).

_FIGURES = Path(__file__).resolve().parent.parent / "test-artifacts" / "reliability-figures.json"
_RELIABILITY_KEY = pytest.StashKey["_Reliability"]()


class _Reliability:
    """Session-wide counters: section -> key -> count."""

    def __init__(self):
        self.counts: dict[str, Counter] = defaultdict(Counter)

    def add(self, section: str, key: str, n: int = 1) -> None:
        self.counts[section][key] += n


@pytest.fixture(scope="session")
def reliability(request):
    """The session's reliability counters (see above)."""
    return request.config.stash.setdefault(_RELIABILITY_KEY, _Reliability())


def pytest_sessionfinish(session, exitstatus):
    rec = session.config.stash.get(_RELIABILITY_KEY, None)
    if rec is None or not rec.counts:
        return
    workerinput = getattr(session.config, "workerinput", None)
    run_id = (workerinput or {}).get("testrunuid") or uuid.uuid4().hex
    _FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with open(_FIGURES.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            old = json.loads(_FIGURES.read_text())
        except (OSError, ValueError):
            old = {}
        merged = old if old.get("run_id") == run_id else {"run_id": run_id, "counts": {}}
        for section, counter in rec.counts.items():
            sec = merged["counts"].setdefault(section, {})
            for key, n in counter.items():
                sec[key] = sec.get(key, 0) + n
        merged["totals"] = {s: sum(v.values()) for s, v in merged["counts"].items()}
        merged["written"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        tmp = _FIGURES.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
        tmp.replace(_FIGURES)
