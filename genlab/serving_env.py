"""Torch's threads per computation for a server, the one piece of the serving layer
(genlab/serving.py) that must run before torch loads: OpenMP reads OMP_NUM_THREADS once, when
torch is imported, for every thread it will ever start.

This file imports nothing but the standard library and nothing from genlab, so that app.py can
run it on its own (`runpy.run_path`) before anything imports the genlab package, which loads torch.
"""
from __future__ import annotations

import os


def server_threads(environ=os.environ, cores: int | None = None) -> int:
    """Torch's threads per computation for a server that many sessions share: GENLAB_THREADS, or
    half the cores (at least one). Two sessions' computations then run side by side instead of
    four threads fighting for two cores, where every parallel step waits at a barrier for a
    thread the scheduler put aside (docs/serving.md); a computation alone takes longer."""
    cores = cores or os.cpu_count() or 1
    raw = environ.get("GENLAB_THREADS", "")
    try:
        n = int(raw) if raw.strip() else max(1, cores // 2)
    except ValueError:
        raise ValueError(f"GENLAB_THREADS must be a whole number of threads, not {raw!r}") from None
    if n < 1:
        raise ValueError(f"GENLAB_THREADS must be at least 1, not {n}")
    return n


def set_thread_env(environ=os.environ, cores: int | None = None) -> str:
    """OMP_NUM_THREADS set to `server_threads` unless it is set already (a count of one's own
    wins); a GENLAB_THREADS that is not a count gives half the cores here (`serving.configure`
    says why once torch runs). Returns the value in effect."""
    try:
        n = server_threads(environ, cores)
    except ValueError:
        n = server_threads({}, cores)
    return environ.setdefault("OMP_NUM_THREADS", str(n))
