"""Shared test configuration."""

import os

# Tests run on 2 cores; keep BLAS from oversubscribing when pytest-xdist runs 2 workers.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
