"""A simulation stopped by SIGTERM takes its Ray cluster with it.

``run_simulation`` starts Ray inside the driver process: a GCS server, a raylet and worker
processes, which ignore the driver's SIGTERM and, when the driver simply dies, live on as
orphans holding CPUs and memory. While :func:`ray_ends_with_run` is active, SIGTERM ends every
process the driver started (SIGKILL: they ignore SIGTERM) and then the driver, with the usual
exit status 128 + 15. ``ray.init`` replaces any SIGTERM handler by one raising
``SystemExit(15)``, so that exit, caught at the block, ends them the same way. The run's audit
trail needs nothing here: what it must hold about a killed run was written before training.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (children, their children, ...), read from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])  # the name may hold spaces
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


@contextmanager
def ray_ends_with_run() -> Iterator[None]:
    """Within the block, SIGTERM kills the driver's descendant processes, then the driver."""

    def end(signum: int, frame: FrameType | None) -> None:
        for child in descendants(os.getpid()):
            with suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        os._exit(128 + signum)

    previous = signal.signal(signal.SIGTERM, end)
    try:
        yield
    except SystemExit as stop:
        if stop.code == signal.SIGTERM:  # ray.init replaces the handler by sys.exit(SIGTERM)
            end(signal.SIGTERM, None)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
