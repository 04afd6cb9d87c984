"""Writing a synthetic log so that it can never pass for a real one.

Three labels travel with every file: ``syn-`` ids on every row (recognisable even when a row is
copied out of context), the canonical header (read by the loader's native "fedpath" format), and
a ``<file>.meta.json`` sidecar saying synthetic, how it was made and what it was calibrated on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

import fedpath
from fedpath.schema import EVENT_DTYPES, conform
from fedpath.synth.config import ASSUMED, CALIBRATED_ON, SynthConfig
from fedpath.synth.generate import iter_chunks

SYNTHETIC_PREFIX = "syn-"
META_SUFFIX = ".meta.json"
GENERATOR = "fedpath synth"


def meta_path(path: Path) -> Path:
    """Where the sidecar of a log file lives: ``<file>.meta.json`` beside it."""
    return path.with_name(path.name + META_SUFFIX)


def _check_labelled(chunk: pd.DataFrame) -> None:
    for column in ("session_id", "item_id"):
        unlabelled = ~chunk[column].astype(str).str.startswith(SYNTHETIC_PREFIX)
        if unlabelled.any():
            value = chunk[column][unlabelled].iloc[0]
            raise ValueError(f"{column} must start with {SYNTHETIC_PREFIX!r}, got {value!r}")


def _arrow_schema() -> pa.Schema:
    kinds = {"object": pa.string(), "int64": pa.int64(), "int8": pa.int8(), "float64": pa.float64()}
    return pa.schema([(name, kinds[dtype]) for name, dtype in EVENT_DTYPES.items()])


def _write_csv(path: Path, chunks: Iterable[pd.DataFrame]) -> tuple[int, int]:
    """Stream the chunks into one CSV; returns (events, sessions). A session is in one chunk."""
    schema = _arrow_schema()
    n_events = n_sessions = 0
    options = pa_csv.WriteOptions(quoting_header="none")
    with pa_csv.CSVWriter(path, schema, write_options=options) as writer:
        for chunk in chunks:
            events = conform(chunk)
            _check_labelled(events)
            writer.write_table(pa.Table.from_pandas(events, schema=schema, preserve_index=False))
            n_events += len(events)
            n_sessions += events["session_id"].nunique()
    return n_events, n_sessions


def write_synthetic(
    path: Path, events: pd.DataFrame | Iterable[pd.DataFrame], config: SynthConfig, *, seed: int
) -> Path:
    """Write ``events`` (one table, or chunks streamed in order) as CSV plus its sidecar.

    The CSV header is exactly the canonical columns. Both files are written beside their final
    names and moved into place at the end, so a failure leaves no half-written log behind.
    """
    path = Path(path)
    sidecar = meta_path(path)
    tmp_csv = path.with_name(path.name + ".tmp")
    tmp_meta = sidecar.with_name(sidecar.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        chunks = [events] if isinstance(events, pd.DataFrame) else events
        n_events, n_sessions = _write_csv(tmp_csv, chunks)
        meta = {
            "synthetic": True,
            "generator": GENERATOR,
            "fedpath_version": fedpath.__version__,
            "seed": seed,
            "n_events": n_events,
            "n_sessions": n_sessions,
            "config": config.to_dict(),
            "calibrated_on": CALIBRATED_ON,
            "assumed_not_measured": list(ASSUMED),
        }
        tmp_meta.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp_csv, path)
        os.replace(tmp_meta, sidecar)
    finally:
        tmp_csv.unlink(missing_ok=True)
        tmp_meta.unlink(missing_ok=True)
    return path


def run_synth(config: SynthConfig, out: Path, seed: int) -> Path:
    """Generate and write a log chunk by chunk (what ``fedpath synth`` calls); returns the CSV."""
    return write_synthetic(Path(out), iter_chunks(config, seed=seed), config, seed=seed)
