"""What the benchmarks measure the same way: peak memory and machine load."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak RSS since exec (VmHWM; ru_maxrss would include the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loadavg() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())
