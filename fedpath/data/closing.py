"""A ``with`` block that closes what it opened, for the loader's readers and writers.

Sources and the quarantine hold an open file between calls; each is used in a ``with`` block so
the file is closed however the load ends. The protocol is the same for all of them, so it is
written once here and each class supplies only its ``close``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closing(ABC):
    """``with obj as o`` gives ``obj`` itself and calls ``obj.close()`` on the way out."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object holds open."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
