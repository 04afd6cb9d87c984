"""How fast, and in how much memory, a large REES46-format log loads.

Writes a REES46-format file of ``--rows`` rows to a temporary folder (generated column-wise with
numpy and written by pyarrow, so generation is not what gets measured), then reads it twice:
streamed with ``iter_events`` (events counted, not kept: memory bounded by the chunk) and
loaded whole with ``load_events`` (the compact output kept). Peak RSS is read from
``resource.getrusage`` after each step; it only ever grows, so each figure is "so far". CPU
seconds are reported beside wall seconds because a shared machine stretches the latter.

    .venv/bin/python benchmarks/load_large_log.py --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from fedpath.data.loader import DEFAULT_CHUNK_ROWS, iter_events, load_events
from fedpath.data.quarantine import Quarantine

RESULTS = Path(__file__).resolve().parent / "results" / "load_large_log.json"
GENERATE_ROWS = 1_000_000  # rows generated per write
START = np.datetime64("2019-10-01T00:00:00", "s")
SPAN_S = 31 * 24 * 3600
EVENT_TYPES = np.array(["view", "cart", "purchase", "remove_from_cart"])
EVENT_P = [0.93, 0.035, 0.03, 0.005]  # remove_from_cart rows are quarantined by design
CATEGORIES = np.array(
    [
        "",
        "electronics.smartphone",
        "electronics.audio.headphone",
        "appliances.kitchen.washer",
        "computers.notebook",
        "apparel.shoes",
        "furniture.living_room.sofa",
        "auto.accessories.player",
        "construction.tools.drill",
        "kids.toys",
    ]
)
BRANDS = np.array(["", "samsung", "apple", "xiaomi", "huawei", "lenovo", "bosch", "sony"])


def write_rees46(path: Path, rows: int, seed: int = 0) -> None:
    """A REES46-format log in time order: ~5 events per session, Zipf-like item popularity."""
    rng = np.random.default_rng(seed)
    with path.open("wb") as sink:
        for first in range(0, rows, GENERATE_ROWS):
            n = min(GENERATE_ROWS, rows - first)
            index = np.arange(first, first + n)
            seconds = START + (index * SPAN_S // max(rows, 1)).astype("timedelta64[s]")
            session = index // 5 + rng.integers(0, 3, n)
            product = (rng.zipf(1.3, n) % 200_000) + 1_000_000
            category = rng.integers(0, len(CATEGORIES), n)
            table = pa.table(
                {
                    "event_time": pc.strftime(pa.array(seconds), format="%Y-%m-%d %H:%M:%S UTC"),
                    "event_type": pa.array(rng.choice(EVENT_TYPES, n, p=EVENT_P)),
                    "product_id": pa.array(product).cast(pa.string()),
                    "category_id": pa.array(category + 2053013552326770905).cast(pa.string()),
                    "category_code": pa.array(CATEGORIES[category]),
                    "brand": pa.array(BRANDS[rng.integers(0, len(BRANDS), n)]),
                    "price": pc.round(pa.array(rng.gamma(2.0, 80.0, n)), 2).cast(pa.string()),
                    "user_id": pa.array(session % 3_000_000 + 500_000_000).cast(pa.string()),
                    "user_session": pc.utf8_lpad(pa.array(session).cast(pa.string()), 36, "0"),
                }
            )
            pacsv.write_csv(
                table,
                sink,
                write_options=pacsv.WriteOptions(include_header=first == 0, quoting_style="none"),
            )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fedpath-bench-") as folder:
        path = Path(folder) / "2019-Oct.csv"
        started = time.perf_counter()
        write_rees46(path, args.rows)
        generated_s = time.perf_counter() - started
        rss_after_generation = peak_rss_mib()

        started, cpu = time.perf_counter(), time.process_time()
        with Quarantine(Path(folder) / "stream.jsonl") as quarantine:
            streamed = sum(
                len(chunk)
                for chunk in iter_events(path, chunk_rows=args.chunk_rows, quarantine=quarantine)
            )
        stream_s, stream_cpu = time.perf_counter() - started, time.process_time() - cpu
        rss_after_stream = peak_rss_mib()

        started, cpu = time.perf_counter(), time.process_time()
        log = load_events(
            path, chunk_rows=args.chunk_rows, quarantine_path=Path(folder) / "load.jsonl"
        )
        load_s, load_cpu = time.perf_counter() - started, time.process_time() - cpu
        result = {
            "rows": args.rows,
            "chunk_rows": args.chunk_rows,
            "file_mib": round(path.stat().st_size / 2**20, 1),
            "generate_seconds": round(generated_s, 2),
            "stream_seconds": round(stream_s, 2),
            "stream_cpu_seconds": round(stream_cpu, 2),
            "stream_rows_per_s": round(args.rows / stream_s),
            "streamed_events": streamed,
            "load_seconds": round(load_s, 2),
            "load_cpu_seconds": round(load_cpu, 2),
            "load_rows_per_s": round(args.rows / load_s),
            "events": len(log.events),
            "quarantined": log.n_quarantined,
            "peak_rss_mib_after_generation": round(rss_after_generation, 1),
            "peak_rss_mib_after_stream": round(rss_after_stream, 1),
            "peak_rss_mib_after_load": round(peak_rss_mib(), 1),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value:>14,}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
