"""The environment both sides start Flower's own processes in (SuperLink, SuperNode, their apps)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def flower_env(flwr_home: Path) -> dict[str, str]:
    """The environment of a Flower process: it starts ``flower-superexec`` and
    ``flwr-clientapp`` by name, so this interpreter's scripts folder must be on PATH, and it
    installs each run's app under ``FLWR_HOME``, kept inside this side's own folder."""
    scripts = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}",
        "FLWR_HOME": str(flwr_home),
        "PYTHONUNBUFFERED": "1",  # their logs reach ours line by line, not in late blocks
    }
