"""What the benchmark reports record about the machine and the code they ran on, and how a report
becomes JSON (shared by the bench_*.py scripts and mpi_bench_job.py, which run from this folder)."""
from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def git_commit():
    """The checked-out commit, or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return None


def jsonable(x):
    """A JSON-safe copy of a report: numpy scalars and arrays as Python values, non-finite floats as
    None (JSON has no inf/nan), paths as strings, dict keys as strings."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    return x
