"""What a figure was measured on, and how much memory it took: one description for every benchmark.

Figures from a shared 2-core machine are only readable beside the CPU, the core count, the threads the
libraries used and the load at the time, so every benchmark reports the same fields.
"""

from __future__ import annotations

import os
import platform
import re
import resource
from functools import cache
from pathlib import Path
from typing import Any


@cache
def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if models:
            return models[0]
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU, cores, Python, system, torch's threads (when torch is already loaded) and the 1-minute load."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(terse=True),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    torch = __import__("sys").modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def peak_rss_mb() -> float:
    """Largest resident set of this process and of any finished child (pool workers), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)
