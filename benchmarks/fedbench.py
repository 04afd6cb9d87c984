"""What the three federation benchmarks share: a fresh process per simulation, and run labels.

Every Flower simulation starts Ray and shuts it down. One process that does so several times
sometimes crashes inside Ray (seen here: a Ray process aborting on a corrupt mutex at the third
simulation, the run then hanging), so each simulation runs in a freshly spawned process; its
memory is then its own too. Every result file records the load average beside its timings: on a
shared machine a time means little without it.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing import get_context
from multiprocessing.connection import Connection
from typing import Any

POLL_SECONDS = 0.5


def _reply(send: Connection, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    send.send(target(*args))


def in_fresh_process(
    target: Callable[..., Any],
    *args: Any,
    on_wait: Callable[[int], None] | None = None,
) -> Any:
    """``target(*args)`` run in a newly spawned process; its return value.

    ``target`` must be importable by name (a module-level function). ``on_wait(pid)`` is called
    about every ``POLL_SECONDS`` while the process runs (to sample its memory, for instance).
    A process that dies without answering raises ``RuntimeError``; its traceback is on stderr.
    """
    context = get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_reply, args=(send, target, args))
    process.start()
    while not receive.poll(POLL_SECONDS):
        if not process.is_alive():
            raise RuntimeError(
                f"{target.__name__} died in process {process.pid} (exit {process.exitcode})"
            )
        if on_wait is not None:
            on_wait(process.pid)
    result = receive.recv()
    process.join()
    return result


def run_meta(script: str, argv: Sequence[str] | None) -> dict[str, Any]:
    """The command as typed, when, on what, and how busy the machine was when it started."""
    args = list(argv) if argv is not None else sys.argv[1:]
    return {
        "command": " ".join([f".venv/bin/python benchmarks/{script}", *args]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_start": list(os.getloadavg()),
    }


def finish_meta(meta: dict[str, Any], started: float) -> dict[str, Any]:
    """``meta`` with the run's wall time and the load average at its end."""
    return {
        **meta,
        "wall_seconds": time.perf_counter() - started,
        "load_average_at_end": list(os.getloadavg()),
    }
