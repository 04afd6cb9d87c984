"""Keeps a partner's SuperNode connected: started, watched, restarted with backoff, reported.

Two signals tell the supervisor where the SuperNode stands:

* its **exit**, the robust one. The SuperNode runs through ``fedpath.clients.supernode``, so
  whatever ends its connection (a refused key, a certificate that does not verify, a
  coordinator unreachable for longer than ``max_wait_time``) ends the process. The supervisor
  logs why (the error lines it printed) and starts it again after a backoff that doubles up to
  ``backoff_max``, so a partner recovers by itself once the coordinator is fixed.
* the line ``SuperNode ID: <id>``, which Flower logs once the SuperLink has accepted the node.
  Flower 1.42 exposes no connection state otherwise (its Runtime API and its health server
  answer the same, connected or not), so this one is read from its log.

From a start until that line, and from an exit until the next start, the partner is not
connected: ``health`` says so, with the last exit's reason, and ``/health`` reports degraded.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUPERNODE_LOG = "supernode.log"
HEALTHY_S = 60.0  # a SuperNode that ran this long before exiting resets the backoff
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Error lines worth quoting as the reason of an exit (not Flower's "attempt failed, retrying")
REASON = re.compile(r"ERROR|Failed|\[code: \d+\]|SSL|[Rr]efused")
NODE_ID = re.compile(r"SuperNode ID: (\d+)")  # Flower's line once the SuperLink accepted it

CONNECTING, CONNECTED, RESTARTING = "connecting", "connected", "restarting"


@dataclass(frozen=True)
class SupernodeSettings:
    runtime_port: int = 9094
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_wait_time: float = 60.0  # seconds Flower retries an unreachable SuperLink, then exits


class SupernodeSupervisor:
    """Runs the SuperNode, starts it again with backoff whenever it exits, and reports whether
    it is connected (``health``, read by ``/health`` from the serving thread)."""

    def __init__(
        self,
        command: list[str],
        work: Path,
        settings: SupernodeSettings,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = command
        self.log_path = work / SUPERNODE_LOG
        self.settings = settings
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.starts = 0
        self._lock = threading.Lock()
        self._state = CONNECTING
        self._since = _now()
        self._node_id: str | None = None
        self._last_exit: dict[str, Any] | None = None

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Connected or not, and since when; the last exit's code and reason, if any."""
        with self._lock:
            return self._state == CONNECTED, {
                "state": self._state,
                "since": self._since,
                "node_id": self._node_id,
                "starts": self.starts,
                "last_exit": self._last_exit,
            }

    def run(self, stop: threading.Event) -> None:
        backoff = self.settings.backoff_initial
        while not stop.is_set():
            started = time.monotonic()
            code, reason = self._run_once(stop)
            if stop.is_set():
                return
            if time.monotonic() - started > HEALTHY_S:
                backoff = self.settings.backoff_initial
            self._set(RESTARTING, last_exit={"code": code, "reason": reason, "at": _now()})
            log.warning(
                "SuperNode exited with code %s: %s; starting it again in %.1f s",
                code,
                reason or "no reason given",
                backoff,
                extra={
                    "event": "supernode_exit",
                    "code": code,
                    "reason": reason,
                    "backoff_s": backoff,
                },
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, self.settings.backoff_max)

    def _run_once(self, stop: threading.Event) -> tuple[int | None, str]:
        """Run the SuperNode to its exit; return its code and the error lines it printed (kept as
        they come: its SuperExec child may print a long traceback of its own after them)."""
        self.starts += 1
        self._set(CONNECTING)
        reasons: deque[str] = deque(maxlen=8)
        with self.log_path.open("a") as sink:
            self.process = subprocess.Popen(
                self.command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=self.env,
            )
            log.info(
                "SuperNode started (pid %d)",
                self.process.pid,
                extra={"event": "supernode_started", "pid": self.process.pid},
            )
            watcher = threading.Thread(target=self._stop_on, args=(stop,), daemon=True)
            watcher.start()
            assert self.process.stdout is not None
            for line in self.process.stdout:
                sink.write(line)
                sink.flush()
                clean = ANSI.sub("", line).strip()
                if REASON.search(clean):
                    reasons.append(clean)
                self._notice_connection(clean)
            code = self.process.wait()
        return code, " | ".join(dict.fromkeys(reasons))

    def _notice_connection(self, line: str) -> None:
        match = NODE_ID.search(line)
        if match is None:
            return
        self._set(CONNECTED, node_id=match.group(1))
        log.info(
            "SuperNode connected as node %s (start %d)",
            match.group(1),
            self.starts,
            extra={
                "event": "supernode_connected",
                "node_id": match.group(1),
                "starts": self.starts,
            },
        )

    def _set(
        self, state: str, node_id: str | None = None, last_exit: dict[str, Any] | None = None
    ) -> None:
        with self._lock:
            self._state, self._since, self._node_id = state, _now(), node_id
            if last_exit is not None:
                self._last_exit = last_exit

    def _stop_on(self, stop: threading.Event) -> None:
        process = self.process
        while process is not None and process.poll() is None:
            if stop.wait(0.5):
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                return


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
