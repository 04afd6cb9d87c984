"""Throughput and latency of one partner's ``/predict`` (issue 6).

A partner is provisioned (a throw-away kit), prepares the REES46 sample exactly as
``fedpath partner`` does (hashed item space, cases, catalogue), and a model trained on its own
cases is promoted in its registry. The prediction server runs in its own process, as it does in
the daemon; this process sends requests from ``--clients`` threads, each a session prefix of 1
to 10 raw item ids drawn from the log, and times every answer.

    .venv/bin/python benchmarks/serving.py                       # markov and gru4rec
    .venv/bin/python benchmarks/serving.py --models markov --requests 500
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FEDPATH_SHARED_DATA", REPO.parent / "shared" / "data"))
REES46 = SHARED / "rees46-multicategory-sample" / "2019-Oct-head.csv"
RESULTS = REPO / "benchmarks" / "results"
PROJECT = """
name: bench
coordinator: {host: 127.0.0.1, port: 9092}
partners: [{name: alpha}, {name: beta}]
federation: {model: %s, item_buckets: 1024, model_params: %s}
"""
MODEL_PARAMS = {"markov": "{}", "gru4rec": "{embedding_size: 64, hidden_size: 64}"}


def prepare_partner(model: str, folder: Path) -> Path:
    """Provision, prepare alpha's data, train and promote its model; return its bundle."""
    from fedpath.clients.local_data import prepare_local_data
    from fedpath.clients.store import load_partner
    from fedpath.federation.registry import ModelRegistry
    from fedpath.server.provision import load_bundle, load_project, provision

    (folder / "project.yaml").write_text(PROJECT % (model, MODEL_PARAMS[model]))
    kit = provision(load_project(folder / "project.yaml"), folder / "kit")
    bundle = load_bundle(kit.partners["alpha"])
    local = prepare_local_data(bundle, REES46, folder / "work")
    cases = load_partner(local.cases_dir, bundle.index)
    trained = bundle.federation.model_spec().build(**({"epochs": 3} if model != "markov" else {}))
    trained.fit(cases["train"])
    registry = ModelRegistry(folder / "work" / "models", key=bundle.model_key.read_bytes())
    card = registry.register(trained, campaign="bench", round=1, config_hash="-", parent=None)
    registry.promote(card.version, {"benchmark": True})
    return kit.partners["alpha"]


def serve(bundle_dir: str, work: str, ready: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """The server process: the same service the daemon starts."""
    import torch

    from fedpath.clients.daemon import build_service
    from fedpath.clients.serving import ServingSettings
    from fedpath.clients.serving_server import start_server
    from fedpath.server.provision import load_bundle

    torch.set_num_threads(1)
    service = build_service(load_bundle(Path(bundle_dir)), Path(work), ServingSettings(port=0))
    server = start_server(service)
    ready.put(server.server_address[1])
    threading.Event().wait()


def load(url: str, prefixes: list[list[str]], clients: int) -> list[float]:
    """Send every prefix once from ``clients`` threads; return each request's seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = iter(prefixes)

    def worker() -> None:
        while True:
            with lock:
                items = next(queue, None)
            if items is None:
                return
            body = json.dumps({"items": items, "k": 10}).encode()
            started = time.perf_counter()
            with urllib.request.urlopen(f"{url}/predict", body, timeout=30) as response:
                response.read()
                assert response.status == 200
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def bench(model: str, requests: int, clients: int) -> dict[str, float | int | str]:
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="fedpath-serving-") as tmp:
        folder = Path(tmp)
        bundle = prepare_partner(model, folder)
        ready: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
        process = multiprocessing.get_context("spawn").Process(
            target=serve, args=(str(bundle), str(folder / "work"), ready), daemon=True
        )
        process.start()
        try:
            url = f"http://127.0.0.1:{ready.get(timeout=300)}"
            items = pd.read_csv(REES46, usecols=["product_id"])["product_id"].astype(str)
            rng = np.random.default_rng(0)
            prefixes = [
                items.sample(
                    int(rng.integers(1, 11)), random_state=int(rng.integers(1 << 31))
                ).to_list()
                for _ in range(requests + 50)
            ]
            load(url, prefixes[:50], clients)  # warm-up: first torch calls, page cache
            started = time.perf_counter()
            latencies = np.array(load(url, prefixes[50:], clients))
            seconds = time.perf_counter() - started
        finally:
            process.terminate()
    return {
        "model": model,
        "requests": requests,
        "clients": clients,
        "requests_per_s": round(requests / seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 2),
        "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 2),
        "cpus": os.cpu_count() or 0,
        "load_average_1m": round(os.getloadavg()[0], 1),  # other work on the machine meanwhile
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["markov", "gru4rec"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    if not REES46.is_file():
        print(f"REES46 sample not found at {REES46} (set FEDPATH_SHARED_DATA)", file=sys.stderr)
        return 1
    rows = [bench(model, args.requests, args.clients) for model in args.models]
    for row in rows:
        print(
            f"{row['model']:>8}: {row['requests_per_s']:8.1f} req/s  p50 {row['p50_ms']:6.2f} ms"
            f"  p99 {row['p99_ms']:6.2f} ms  ({row['requests']} requests, {row['clients']} clients)"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
