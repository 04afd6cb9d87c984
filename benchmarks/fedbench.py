"""What the federation benchmarks share: a fresh process per simulation, run labels, and the
GRU4Rec federation and options of the partner-count benchmarks (``scale``, ``secagg_overhead``).

Every Flower simulation starts Ray and shuts it down. One process that does so several times
sometimes crashes inside Ray (seen here: a Ray process aborting on a corrupt mutex at the third
simulation, the run then hanging), so each simulation runs in a freshly spawned process; its
memory is then its own too. Every result file records the load average beside its timings: on a
shared machine a time means little without it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common import plain, train_config

from fedpath.federation.config import FederationConfig
from fedpath.models.popularity import Popularity
from fedpath.models.registry import model_class

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


def gru4rec_federation(
    rounds: int, model_params: Mapping[str, Any] | None = None, **fields: Any
) -> FederationConfig:
    """GRU4Rec, the partner-count benchmarks' model, as ``federation_config`` sets it up."""
    return federation_config("gru4rec", rounds, model_params, **fields)


def federation_config(
    model: str, rounds: int, model_params: Mapping[str, Any] | None = None, **fields: Any
) -> FederationConfig:
    """``model`` as ``conf/model/<model>.yaml`` sets it (``model_params`` over that), federated
    ``rounds`` rounds on the `fedpath train` protocol's prefix length (count models by their
    exact secure sum); ``fields`` set the rest."""
    cfg = train_config([f"model={model}"])
    params = {**plain(cfg.model), **(model_params or {})}
    name = params.pop("name")
    if issubclass(model_class(name), Popularity):
        fields = {"strategy": "sum", **fields}
    return FederationConfig(
        model=name,
        model_params=params,
        rounds=rounds,
        max_len=int(cfg.protocol.max_prefix_length),
        **fields,
    )


def partner_count_parser(
    doc: str | None, *, quick: str, sizes: Sequence[int], rounds: int
) -> argparse.ArgumentParser:
    """The options of a benchmark run at several partner counts (``quick`` says what --quick
    shrinks); a script adds its own before parsing."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--sizes", type=int, nargs="+", help=f"partner counts (default {sizes})")
    parser.add_argument("--rounds", type=int, help=f"rounds per run (default {rounds})")
    parser.add_argument("--out", type=Path, help="JSON to write")
    return parser
