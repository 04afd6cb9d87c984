"""A `fedpath simulate` stopped by SIGTERM: its ε stays in the audit trail, no process survives.

The first test drives the SIGTERM guard with a real child that ignores SIGTERM, as Ray's
processes do (fast). The second kills a real DP simulation mid-training (slow: Hydra, data and a
Ray simulation, about a minute on busy cores).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedpath.privacy.audit import verify_audit
from fedpath.simulations.termination import descendants

# A driver under the guard that starts a grandchild ignoring SIGTERM, then waits to be killed.
GUARDED = """
import subprocess, sys, time
from fedpath.simulations.termination import ray_ends_with_run
stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
with ray_ends_with_run():
    child = subprocess.Popen([sys.executable, "-c", stubborn])
    print("started", flush=True)
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_dead(pids: list[int], seconds: float = 20.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (living := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return living


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_ends_the_processes_the_driver_started_that_ignore_it() -> None:
    # Prepare
    driver = subprocess.Popen([sys.executable, "-c", GUARDED], stdout=subprocess.PIPE, text=True)
    assert driver.stdout is not None and driver.stdout.readline() == "started\n"
    below = descendants(driver.pid)
    try:
        # Execute
        driver.send_signal(signal.SIGTERM)
        code = driver.wait(timeout=30)

        # Assert: the driver exits as terminated, and the stubborn grandchild is gone with it
        assert code == 128 + signal.SIGTERM
        assert below and wait_dead(below) == []
    finally:
        kill_all(below)


@pytest.mark.slow
def test_a_dp_simulation_killed_mid_run_keeps_its_charge_in_the_trail_and_leaves_no_ray(
    tmp_path: Path,
) -> None:
    # Prepare: Markov counts under session DP, many rounds so the kill lands while training
    ledgers, runs = tmp_path / "ledgers", tmp_path / "runs"
    args = [
        "simulate",
        "model=markov",
        "strategy=sum",
        "rounds=30",
        "data.n_sessions=200",
        "partners=2",
        "baselines=false",
        "funnel=off",
        "privacy=session",
        "privacy.session.budget_epsilon=1000",
        f"privacy.session.ledger_dir={ledgers}",
        f"out={runs}",
    ]
    exe = Path(sys.executable).with_name("fedpath")
    driver = subprocess.Popen(
        [str(exe), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ledger = ledgers / "partner-0000.jsonl"
    below: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while not (ledger.exists() and ledger.read_bytes().count(b"\n") >= 1):
            assert driver.poll() is None, "the simulation ended before it charged"
            assert time.monotonic() < deadline, "no charge within 300 s"
            time.sleep(0.05)
        below = descendants(driver.pid)
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in below if alive(pid)}

        # Execute
        driver.send_signal(signal.SIGTERM)
        code = driver.wait(timeout=60)

        # Assert: Ray was running, and nothing the run started survives it
        assert code == 128 + signal.SIGTERM
        assert any("raylet" in name or "gcs" in name for name in names), names
        assert wait_dead(below) == []
        # ... the trail verifies, is unfinished, and names the run whose charges the ledger holds
        (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
        entries = verify_audit(run_dir / "audit.jsonl")
        kinds = [e.kind for e in entries]
        assert "privacy_plan" in kinds and "model" not in kinds
        plan = entries[kinds.index("privacy_plan")].payload
        charges = [json.loads(line)["data"] for line in ledger.read_text().splitlines()]
        assert {c["run_id"] for c in charges} == {plan["run_id"]}
        assert sum(c["epsilon"] for c in charges) <= plan["max_session_epsilon_per_partner"]
    finally:
        if driver.poll() is None:
            driver.kill()
        kill_all(below)
