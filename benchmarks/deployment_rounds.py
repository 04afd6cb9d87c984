"""Round time of a deployed federation over loopback vs the same work in simulation (issue 6).

Both federate the REES46 sample across three partners with the same model, strategy, SecAgg+
settings and number of rounds. The deployment is the real thing on 127.0.0.1 (provision,
coordinator, three partner daemons: the loopback tests' harness, `tests/deployment_loopback.py`),
each shop's log holding a third of the shoppers; the simulation is `run_federation` (Flower's
Ray engine, one process per partner) on an IID partition of the same log into three. Each
figure is the round time Flower's strategy saw: sampling to the end of federated evaluation.

    .venv/bin/python benchmarks/deployment_rounds.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FEDPATH_SHARED_DATA", REPO.parent / "shared" / "data"))
REES46 = SHARED / "rees46-multicategory-sample" / "2019-Oct-head.csv"
RESULTS = REPO / "benchmarks" / "results"
MODEL_PARAMS = {"embedding_size": 16, "hidden_size": 16, "batch_size": 64}
BUCKETS = 256


def deployed(rounds: int) -> list[float]:
    sys.path.insert(0, str(REPO / "tests"))
    from deployment_loopback import PARTNERS, Loopback

    federation = {"model": "gru4rec", "item_buckets": BUCKETS, "model_params": MODEL_PARAMS}
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
            loop.wait(loop.finished, 3600, "the campaign")
            return [r["round_seconds"] for r in loop.campaign()["records"]]
        finally:
            loop.close()


def simulated(rounds: int) -> list[float]:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not REES46.is_file():
        print(f"REES46 sample not found at {REES46} (set FEDPATH_SHARED_DATA)", file=sys.stderr)
        return 1
    rows = {}
    for name, run in (("deployment", deployed), ("simulation", simulated)):
        seconds = run(args.rounds)
        rows[name] = {
            "round_seconds": [round(s, 1) for s in seconds],
            "median_s": round(statistics.median(seconds), 1),
        }
        print(
            f"{name:>10}: rounds {rows[name]['round_seconds']} s, median {rows[name]['median_s']} s"
        )
    ratio = rows["deployment"]["median_s"] / rows["simulation"]["median_s"]
    print(f"deployment / simulation median round time: {ratio:.2f}")
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "partners": 3,
        "model": "gru4rec",
        "model_params": MODEL_PARAMS,
        "secagg": True,
        "rounds": args.rounds,
        **rows,
        "ratio": round(ratio, 2),
        "load_average_1m": os.getloadavg()[0],
    }
    (RESULTS / "deployment_rounds.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
