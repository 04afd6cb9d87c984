"""From a configured log to prediction cases: the data half of every run (train, simulate, bench).

Kept apart from training so that the centralized run, the federated simulation and the benchmarks
prepare data the same way, and a difference in their figures can never come from preparation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Cases, SplitDataset
from fedpath.data.loader import LoadedLog, load_events
from fedpath.data.named_columns import named_mapping
from fedpath.data.protocol import ProtocolConfig, apply_protocol
from fedpath.data.sessionize import sessionize
from fedpath.errors import DataFormatError
from fedpath.metrics.funnel import Funnel, funnel
from fedpath.privacy.keys import pseudonym_key
from fedpath.privacy.pseudonymize import pseudonymize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSource:
    """Where a run's events come from; ``path=None`` means the embedded synthetic default."""

    name: str
    path: Path | None
    format: str | None = None
    n_sessions: int | None = None
    # True where the log holds whole sessions (no time-window cut): every last event is an exit,
    # so the protocol's censoring of sessions near the log's end must not apply.
    complete_sessions: bool = False
    # True to replace user and session ids by keyed pseudonyms as the log is loaded, so no raw id
    # reaches any later step; the key is read from pseudonym_key_path, else $FEDPATH_PSEUDONYM_KEY.
    pseudonymize: bool = False
    pseudonym_key_path: Path | None = None
    # A log of no known format, read by naming its columns (fedpath.data.named_columns): command
    # name (session, item, time, ...) -> header column, source action value -> action name, and
    # the time unit or format (None: seconds, milliseconds or ISO 8601, read per value).
    columns: Mapping[str, str | None] | None = None
    actions: Mapping[str, str | None] | None = None
    time_format: str | None = None

    @property
    def named(self) -> bool:
        """Whether the log is read by the columns named, not by a format."""
        return any(name is not None for name in (self.columns or {}).values())


@dataclass(frozen=True)
class PreparedData:
    """Everything a run needs from its log, prepared once."""

    source: DataSource
    log: LoadedLog
    split: SplitDataset
    train: Cases
    valid: Cases
    test: Cases
    funnel: Funnel

    @property
    def synthetic(self) -> bool:
        return self.log.synthetic

    def account(self) -> list[str]:
        """The run report's lines on the data: every row in is loaded or quarantined, and any
        split left empty is said (with why) beside the n/a metrics it causes."""
        log = self.log
        rows = (
            f"Log: `{log.path}`: {log.n_rows} rows in = {len(log.events)} loaded"
            f" + {log.n_quarantined} quarantined."
        )
        return [rows, *(f"**Warning:** {warning}." for warning in self.split.warnings)]


def resolve_source(source: DataSource, run_dir: Path, *, seed: int) -> Path:
    """The log file to read, generating the synthetic default into the run folder when needed."""
    if source.path is not None:
        return source.path
    from fedpath.synth import SynthConfig, run_synth

    config = SynthConfig(n_sessions=source.n_sessions or SynthConfig().n_sessions)
    return run_synth(config, run_dir / "synthetic-events.csv", seed=seed)


def prepare(
    source: DataSource, protocol: ProtocolConfig, run_dir: Path, *, seed: int = 0
) -> PreparedData:
    """Load, quarantine, sessionize, split and cut prefixes; malformed rows go beside the run."""
    path = resolve_source(source, run_dir, seed=seed)
    key = pseudonym_key(source.pseudonym_key_path) if source.pseudonymize else None
    # Quarantined rows are raw records, ids included: under pseudonymization they stay out of the
    # run folder, in a private temporary file whose path is logged.
    quarantine = run_dir / "quarantine.jsonl" if key is None else None
    mapping = (
        named_mapping(
            path, source.columns or {}, actions=source.actions, time_format=source.time_format
        )
        if source.named
        else None
    )
    loaded = load_events(path, fmt=source.format, mapping=mapping, quarantine_path=quarantine)
    if key is not None:
        loaded = replace(loaded, events=pseudonymize(loaded.events, key))
    if loaded.n_quarantined:
        log.warning(
            "%s: %d malformed rows quarantined in %s",
            path,
            loaded.n_quarantined,
            loaded.quarantine_path,
        )
    if loaded.events.empty:
        kept = f" (see {loaded.quarantine_path})" if loaded.n_quarantined else ""
        raise DataFormatError(
            f"{path}: must hold at least one valid event, got {loaded.n_rows} rows, "
            f"{loaded.n_quarantined} quarantined{kept}: give a log with events below its header"
        )
    if source.complete_sessions or loaded.clockless:  # no time cut can have ended a session
        protocol = replace(protocol, censor_window_minutes=None)
    events: pd.DataFrame = sessionize(loaded.events, gap_minutes=protocol.gap_minutes)
    split = apply_protocol(events, protocol)
    for warning in split.warnings:
        log.warning("%s: %s", path, warning)
    max_len = protocol.max_prefix_length
    return PreparedData(
        source=source,
        log=loaded,
        split=split,
        train=expand_prefixes(split.train, max_len=max_len),
        valid=expand_prefixes(split.valid, max_len=max_len),
        test=expand_prefixes(split.test, max_len=max_len),
        funnel=funnel(events),
    )
