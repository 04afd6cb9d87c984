"""Round time of a deployed federation over loopback vs the same work in simulation (issues 6,
14), and the CPU each partner spends.

Both federate the REES46 sample across three partners with the same model, strategy, SecAgg+
settings and number of rounds. The deployment is the real thing on 127.0.0.1 (provision,
coordinator, three partner daemons: the loopback tests' harness, `tests/deployment_loopback.py`),
each shop's log holding a third of the shoppers; the simulation is `run_federation` (Flower's
Ray engine, one process per partner) on an IID partition of the same log into three. Each
round figure is the round time Flower's strategy saw: sampling to the end of federated
evaluation. Round 1 is shown apart: the simulation starts Ray in it, the deployment its
ServerApp's first exchanges.

CPU seconds per partner: for the deployment, everything a partner daemon's process tree spent
(the daemon, its SuperNode, its ClientApp host and every ClientApp it forked) from the start of
training to the end of the campaign (rounds, gate and publication, idle polling included), read
from `/proc` when the daemon has exited and before it is reaped, less what the tree had spent
when training began (its data preparation). For the simulation, the whole run's CPU (server,
Ray and the three partners' workers), measured the same way around a child process, divided by
three: a partner's share, the server's included.

    .venv/bin/python benchmarks/deployment_rounds.py --rounds 3
    .venv/bin/python benchmarks/deployment_rounds.py --rounds 2 --tiny   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FEDPATH_SHARED_DATA", REPO.parent / "shared" / "data"))
REES46 = SHARED / "rees46-multicategory-sample" / "2019-Oct-head.csv"
RESULTS = REPO / "benchmarks" / "results"
MODEL_PARAMS = {"embedding_size": 16, "hidden_size": 16, "batch_size": 64}
BUCKETS = 256
TINY_BUCKETS = 64
TICK = os.sysconf("SC_CLK_TCK")
ROUNDS = "ROUNDS "  # the simulation child's line of round seconds


def process_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of the children it has reaped (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / TICK  # utime stime cutime cstime


def session_cpu(sid: int) -> float:
    """CPU seconds of every live process in session ``sid`` (a daemon started in its own)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            total += sum(int(v) for v in fields[11:15]) / TICK
    return total


def cpu_at_exit(process: subprocess.Popen, timeout: float = 120) -> float:
    """Wait for ``process`` to exit without reaping it; its CPU with its reaped children's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
            return process_cpu(process.pid)
        time.sleep(0.2)
    raise TimeoutError(f"process {process.pid} did not exit within {timeout:.0f} s")


def deployed(rounds: int, tiny: bool) -> tuple[list[float], list[float]]:
    """Round seconds, and CPU seconds per partner from training to the campaign's end."""
    sys.path.insert(0, str(REPO / "tests"))
    from deployment_loopback import PARTNERS, Loopback

    federation = {
        "model": "gru4rec",
        "item_buckets": TINY_BUCKETS if tiny else BUCKETS,
        "model_params": MODEL_PARAMS,
    }
    with tempfile.TemporaryDirectory(prefix="fedpath-loopback-") as tmp:
        loop = Loopback.provision(Path(tmp), REES46, federation)
        try:
            loop.coordinator({"rounds": rounds, "wait_all_s": 600})
            loop.wait(
                lambda: (
                    all(p["node_id"] for p in loop.service().get("partners", {}).values())
                    and len(loop.service().get("partners", {})) == len(PARTNERS)
                ),
                300,
                "registration",
            )
            for index in range(len(PARTNERS)):
                loop.partner(index)
            loop.wait(lambda: loop.campaign().get("state") == "training", 1200, "training")
            daemons = [loop.processes[name] for name in PARTNERS]
            before = [session_cpu(d.pid) for d in daemons]
            loop.wait(loop.finished, 3600, "the campaign")
            seconds = [r["round_seconds"] for r in loop.campaign()["records"]]
            for daemon in daemons:
                daemon.send_signal(signal.SIGTERM)  # the daemon stops its children and reaps them
            spent = [cpu_at_exit(d) - b for d, b in zip(daemons, before, strict=True)]
            return seconds, spent
        finally:
            loop.close()


def simulated_rounds(rounds: int) -> list[float]:
    """The simulation itself (run in a child process of its own: see ``simulated``)."""
    from fedpath.data.protocol import ProtocolConfig
    from fedpath.federation.config import FederationConfig
    from fedpath.simulations.federation import run_federation
    from fedpath.simulations.partition import PartitionConfig, partition
    from fedpath.simulations.pipeline import DataSource, prepare

    with tempfile.TemporaryDirectory(prefix="fedpath-sim-") as tmp:
        data = prepare(DataSource("rees46", REES46, format="rees46"), ProtocolConfig(), Path(tmp))
    partners = partition(data.split, PartitionConfig(scheme="iid", n_partners=3))
    result = run_federation(
        data.split,
        partners,
        FederationConfig(model="gru4rec", model_params=MODEL_PARAMS, rounds=rounds),
    )
    return [r.round_seconds for r in result.rounds]


def simulated(rounds: int) -> tuple[list[float], float]:
    """Round seconds, and the whole simulation's CPU seconds (its process tree, at its exit)."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--rounds", str(rounds), "--simulation-only"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    out = process.stdout.read()
    cpu = cpu_at_exit(process)
    if process.wait() != 0:
        raise RuntimeError(f"the simulation failed:\n{out[-2000:]}")
    line = next(x for x in out.splitlines() if x.startswith(ROUNDS))
    return json.loads(line.removeprefix(ROUNDS)), cpu


def summary(seconds: list[float]) -> dict[str, float | None]:
    later = seconds[1:]
    return {
        "round_1_s": round(seconds[0], 1),
        "later_median_s": round(statistics.median(later), 1) if later else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="64 buckets, results not written")
    parser.add_argument("--simulation-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.simulation_only:
        print(ROUNDS + json.dumps(simulated_rounds(args.rounds)), flush=True)
        return 0
    if not REES46.is_file():
        print(f"REES46 sample not found at {REES46} (set FEDPATH_SHARED_DATA)", file=sys.stderr)
        return 1
    load_before = os.getloadavg()[0]
    deploy_seconds, deploy_cpu = deployed(args.rounds, args.tiny)
    sim_seconds, sim_cpu = simulated(args.rounds)
    rows = {
        "deployment": {
            "round_seconds": [round(s, 1) for s in deploy_seconds],
            **summary(deploy_seconds),
            "cpu_s_per_partner": [round(c, 1) for c in deploy_cpu],
        },
        "simulation": {
            "round_seconds": [round(s, 1) for s in sim_seconds],
            **summary(sim_seconds),
            "cpu_s_per_partner": [round(sim_cpu / 3, 1)] * 3,
        },
    }
    print(f"| {'':<10} | round 1 s | later rounds s (median) | CPU s per partner |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        later = row["later_median_s"]
        print(
            f"| {name:<10} | {row['round_1_s']} | {'-' if later is None else later} | "
            f"{' / '.join(str(c) for c in row['cpu_s_per_partner'])} |"
        )
    load_after = os.getloadavg()[0]
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    if args.tiny:
        return 0
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "partners": 3,
        "model": "gru4rec",
        "model_params": MODEL_PARAMS,
        "item_buckets": BUCKETS,
        "secagg": True,
        "rounds": args.rounds,
        **rows,
        "load_average_1m": [round(load_before, 2), round(load_after, 2)],
    }
    (RESULTS / "deployment_rounds.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
