"""Keeps a partner's Flower processes running: started, watched, restarted with backoff, reported.

Two processes, each supervised the same way (:class:`ProcessSupervisor`): the **SuperNode**,
connected to the coordinator, and the **ClientApp host** (``fedpath.clients.clientapp_host``),
the long-lived process the SuperNode hands each message to (``--isolation process``). Either
one's exit is logged with the error lines it printed (``"event": "supernode_exit"`` /
``"clientapp_exit"``) and it is started again after a backoff that doubles up to
``backoff_max``, so a partner recovers by itself once the coordinator is fixed, or after its
ClientApp died.

For the SuperNode, two signals tell the supervisor where it stands:

* its **exit**, the robust one. The SuperNode runs through ``fedpath.clients.supernode``, so
  whatever ends its connection (a refused key, a certificate that does not verify, a
  coordinator unreachable for longer than ``max_wait_time``) ends the process.
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
CLIENTAPP_LOG = "clientapp.log"
HEALTHY_S = 60.0  # a process that ran this long before exiting resets the backoff
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Error lines worth quoting as the reason of an exit (not Flower's "attempt failed, retrying")
REASON = re.compile(r"ERROR|Failed|\[code: \d+\]|SSL|[Rr]efused|Traceback|Error:")
NODE_ID = re.compile(r"SuperNode ID: (\d+)")  # Flower's line once the SuperLink accepted it

CONNECTING, CONNECTED, RESTARTING, RUNNING = "connecting", "connected", "restarting", "running"


@dataclass(frozen=True)
class SupernodeSettings:
    runtime_port: int = 9094
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_wait_time: float = 60.0  # seconds Flower retries an unreachable SuperLink, then exits
    idle_poll: float = 0.25  # seconds the SuperNode waits between polls (Flower's: 3 s)
    task_poll: float = 0.1  # seconds the ClientApp host waits between looks for a message


class ProcessSupervisor:
    """Runs ``command``, starts it again with backoff whenever it exits, and reports whether
    it is up (``health``, read by ``/health`` from the serving thread). ``name`` names its log
    file's events (``<name>_started``, ``<name>_exit``)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        log_path: Path,
        settings: SupernodeSettings,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
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
        """Up or not, and since when; the last exit's code and reason, if any."""
        with self._lock:
            return self._state in (CONNECTED, RUNNING), {
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
                "%s exited with code %s: %s; starting it again in %.1f s",
                self.name,
                code,
                reason or "no reason given",
                backoff,
                extra={
                    "event": f"{self.name}_exit",
                    "code": code,
                    "reason": reason,
                    "backoff_s": backoff,
                },
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, self.settings.backoff_max)

    def _run_once(self, stop: threading.Event) -> tuple[int | None, str]:
        """Run the process to its exit; return its code and the error lines it printed (kept
        as they come: a child of its own may print a long traceback after them)."""
        self.starts += 1
        self._set(self.start_state)
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
                "%s started (pid %d)",
                self.name,
                self.process.pid,
                extra={"event": f"{self.name}_started", "pid": self.process.pid},
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
                self._notice(clean)
            code = self.process.wait()
        return code, " | ".join(dict.fromkeys(reasons))

    @property
    def start_state(self) -> str:
        return RUNNING

    def _notice(self, line: str) -> None:
        """A line the process printed: what it says about its state, if anything."""

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


class SupernodeSupervisor(ProcessSupervisor):
    """The SuperNode: connected once Flower logs the node id it was accepted as."""

    def __init__(
        self,
        command: list[str],
        work: Path,
        settings: SupernodeSettings,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__("supernode", command, work / SUPERNODE_LOG, settings, env)

    @property
    def start_state(self) -> str:
        return CONNECTING

    def _notice(self, line: str) -> None:
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


def clientapp_supervisor(
    command: list[str],
    work: Path,
    settings: SupernodeSettings,
    env: dict[str, str] | None = None,
) -> ProcessSupervisor:
    """The ClientApp host: up from its start (it waits for its SuperNode by itself)."""
    return ProcessSupervisor("clientapp", command, work / CLIENTAPP_LOG, settings, env)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
