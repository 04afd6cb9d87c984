"""A real deployed federation on 127.0.0.1 for tests: provisioning, the coordinator and partner
daemons as separate processes started through the `fedpath` CLI, exactly as
docs/deployment.md starts them on three machines, each on its own free ports.

Every process is started in its own session, and `close` ends each of them (and any Flower
process still running from this federation's folder) so that a failed test leaves nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fedpath.server.provision import Kit

FEDPATH = str(Path(sys.executable).with_name("fedpath"))
PARTNERS = ("alpha", "beta", "gamma")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def split_log(log: Path, folder: Path, n: int) -> list[Path]:
    """One partner log per shop: the REES46 sample's shoppers dealt by user id."""
    events = pd.read_csv(log)
    paths = []
    for i in range(n):
        path = folder / f"shop-{i}.csv"
        events[events["user_id"] % n == i].to_csv(path, index=False)
        paths.append(path)
    return paths


def http(url: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(url, data, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


@dataclass
class Loopback:
    root: Path
    kit: Kit
    logs: list[Path]
    port: int
    http_port: int
    serve_ports: list[int]
    runtime_ports: list[int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def provision(cls, root: Path, rees46: Path, federation: dict[str, Any]) -> Loopback:
        port, http_port, *rest = free_ports(2 + 2 * len(PARTNERS))
        project = {
            "name": "loopback",
            "coordinator": {"host": "127.0.0.1", "port": port},
            "partners": [{"name": name} for name in PARTNERS],
            "federation": federation,
        }
        (root / "project.yaml").write_text(yaml.safe_dump(project))
        subprocess.run([FEDPATH, "provision", "project.yaml", "--out", "kit"], cwd=root, check=True)
        kit = Kit(
            root=root / "kit",
            authority=root / "kit" / "ca",
            coordinator=root / "kit" / "coordinator",
            partners={name: root / "kit" / "partners" / name for name in PARTNERS},
        )
        return cls(
            root=root,
            kit=kit,
            logs=split_log(rees46, root, len(PARTNERS)),
            port=port,
            http_port=http_port,
            serve_ports=rest[: len(PARTNERS)],
            runtime_ports=rest[len(PARTNERS) :],
        )

    def twin(self, root: Path) -> Loopback:
        """The same federation (keys, item key, logs, ports) in another folder, for a second
        run that must see exactly the same data; to be made before either runs."""
        shutil.copytree(self.kit.root, root / "kit")
        logs = [Path(shutil.copy(log, root / log.name)) for log in self.logs]
        return Loopback(
            root=root,
            kit=_kit(root / "kit"),
            logs=logs,
            port=self.port,
            http_port=self.http_port,
            serve_ports=self.serve_ports,
            runtime_ports=self.runtime_ports,
        )

    # ------------------------------------------------------------------ processes
    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        out = (self.root / f"{name}.out").open("ab")
        process = subprocess.Popen(
            [FEDPATH, *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = process
        return process

    def coordinator(self, training: dict[str, Any], secagg: dict[str, Any] | None = None) -> None:
        config = self.root / "coordinator.yaml"
        config.write_text(yaml.safe_dump({"training": training, "secagg": secagg or {}}))
        self.start(
            "coordinator",
            "coordinator",
            "--workspace",
            str(self.kit.coordinator),
            "--config",
            str(config),
            "--http-port",
            str(self.http_port),
        )

    def partner(self, index: int) -> None:
        name = PARTNERS[index]
        self.start(
            name,
            "partner",
            "--bundle",
            str(self.kit.partners[name]),
            "--data",
            str(self.logs[index]),
            "--serve-port",
            str(self.serve_ports[index]),
            "--runtime-port",
            str(self.runtime_ports[index]),
        )

    def kill(self, name: str) -> None:
        """SIGKILL a daemon and everything it started (a machine losing power)."""
        process = self.processes.pop(name)
        _killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        # Flower starts each ServerApp in a session of its own: find it by its folder.
        folder = self.kit.coordinator if name == "coordinator" else self.kit.partners[name]
        _kill_matching(str(folder))

    def close(self) -> None:
        for process in self.processes.values():
            _killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _killpg(process.pid, signal.SIGKILL)
        _kill_matching(str(self.root))

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> Path:
        return self.kit.coordinator / "state"

    def campaign(self) -> dict[str, Any]:
        path = self.state / "campaign.json"
        try:
            return json.loads(path.read_text()) if path.is_file() else {}
        except json.JSONDecodeError:  # caught between write and rename: read again
            return {}

    def service(self) -> dict[str, Any]:
        path = self.state / "service.json"
        try:
            return json.loads(path.read_text()) if path.is_file() else {}
        except json.JSONDecodeError:
            return {}

    def status_text(self) -> str:
        """What `fedpath status` prints for the coordinator's workspace (it must succeed)."""
        return subprocess.run(
            [FEDPATH, "status", "--workspace", str(self.kit.coordinator)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``condition``; return the seconds it took, or fail with the daemons' output."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if condition():
                return time.monotonic() - started
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise AssertionError(f"{dead} exited while waiting for {what}\n{self.tail()}")
            time.sleep(1)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.tail()}")

    def tail(self, lines: int = 25) -> str:
        parts = []
        for path in sorted(self.root.glob("*.out")) + sorted((self.state / "logs").glob("run-*")):
            text = path.read_text(errors="replace").splitlines()
            parts.append(f"--- {path.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def completed(self, rounds: int) -> Callable[[], bool]:
        return lambda: self.campaign().get("completed_rounds", 0) >= rounds

    def finished(self) -> bool:
        return self.campaign().get("state") == "finished"


def _kit(root: Path) -> Kit:
    return Kit(
        root=root,
        authority=root / "ca",
        coordinator=root / "coordinator",
        partners={name: root / "partners" / name for name in PARTNERS},
    )


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _kill_matching(fragment: str) -> None:
    """SIGKILL every process of ours whose command line mentions ``fragment`` (a tmp folder)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fragment in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def start_partner(loop: Loopback, index: int, config: dict[str, Any]) -> None:
    """``Loopback.partner`` with a ``--config`` file of ``conf/partner.yaml`` overrides."""
    name = PARTNERS[index]
    path = loop.root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    loop.start(
        name,
        "partner",
        "--bundle",
        str(loop.kit.partners[name]),
        "--data",
        str(loop.logs[index]),
        "--serve-port",
        str(loop.serve_ports[index]),
        "--runtime-port",
        str(loop.runtime_ports[index]),
        "--config",
        str(path),
    )


def partner_health(loop: Loopback, index: int) -> dict[str, Any]:
    """A partner daemon's ``/health`` body; empty while it is not answering yet."""
    _, text = http(f"http://127.0.0.1:{loop.serve_ports[index]}/health")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}
