"""The environment both sides start Flower's own processes in (SuperLink, SuperNode, their apps),
and the one retry interval of Flower's transport both sides shorten."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from types import ModuleType


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


# Flower 1.42 retries an object that is not uploaded yet (a message is listed before its arrays
# are) after 1 s, doubling up to 10 s (``flwr.supercore.constant.PULL_INITIAL_BACKOFF``), so a
# receiver that polls promptly, and so finds messages early, waited 1-3 s per message for them.
OBJECT_PULL_BACKOFF_S = 0.05  # first retry of an object not uploaded yet
OBJECT_PULL_BACKOFF_CAP_S = 1.0  # longest wait between retries


def quicken_object_pulls(module: ModuleType) -> None:
    """Make ``module``'s ``pull_objects`` (Flower's, imported there by name) retry an object
    not uploaded yet after ``OBJECT_PULL_BACKOFF_S``, doubling up to
    ``OBJECT_PULL_BACKOFF_CAP_S``; everything else about the pull is Flower's."""
    pull = module.pull_objects
    if isinstance(pull, functools.partial):
        return  # already done
    module.pull_objects = functools.partial(
        pull, initial_backoff=OBJECT_PULL_BACKOFF_S, backoff_cap=OBJECT_PULL_BACKOFF_CAP_S
    )
