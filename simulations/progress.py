"""A terminal progress bar over federated rounds, with the live metric of the last round."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedpath.strategies.recorder import RoundRecord


class RoundProgress:
    """Fed by `run_federation`'s `on_round` and `run_experiment`'s `on_stage` callbacks."""

    def __init__(self, rounds: int, *, metric: str = "recall@20") -> None:
        self.metric = metric
        self._progress = Progress(
            TextColumn("[bold]round"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task("rounds", total=rounds, status="")

    def __enter__(self) -> RoundProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def stage(self, text: str) -> None:
        self._progress.console.print(f"[fedpath] {text}")

    def round_done(self, record: RoundRecord) -> None:
        value = record.metrics.get(self.metric, float("nan"))
        status = (
            f"{self.metric}={value:.4f}  partners={len(record.participants)}"
            f"  dropped={record.dropped}  {record.round_seconds:.1f}s"
        )
        self._progress.update(self._task, completed=record.round, status=status)
