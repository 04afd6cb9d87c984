"""Recompute the synthetic generator's defaults from the real samples, and compare logs.

    .venv/bin/python benchmarks/synth_calibration.py [--shared-data DIR] [--scale-events N]

1. Measures the Diginetica and REES46 samples (``fedpath.synth.measure_log``) and prints every
   default of ``fedpath.synth.config`` beside the figure recomputed from its sample.
2. Calibrates a synthetic twin of each sample (``fedpath.synth.calibrate``) and prints real vs
   synthetic statistics side by side, plus the statistics of the default demo log.
3. Times generation of ``--scale-events`` events (default 1M) chunk by chunk.

Writes benchmarks/results/synth_calibration.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

from fedpath.data.loader import load_events
from fedpath.synth import SynthConfig, generate, iter_chunks, measure_log
from fedpath.synth import config as defaults
from fedpath.synth.calibrate import calibrate
from fedpath.synth.measure import LogStatistics

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "synth_calibration.json"
SAMPLES = {
    "diginetica": ("diginetica-sample/sample_train-item-views.csv", "diginetica"),
    "rees46": ("rees46-multicategory-sample/2019-Oct-head.csv", "rees46"),
}
# default constant -> (sample it is measured on, statistic of that sample)
MEASURED = {
    "SESSION_LENGTH_MEAN": ("diginetica", "session_length_mean"),
    "SESSION_LENGTH_DISPERSION": ("diginetica", "session_length_dispersion"),
    "REPEAT_RATE": ("rees46", "repeat_rate"),
    "SAME_CATEGORY_RATE": ("rees46", "same_category_rate"),
    "CART_RATE": ("rees46", "cart_rate"),
    "PURCHASE_AFTER_VIEW_RATE": ("rees46", "purchase_after_view_rate"),
    "PURCHASE_AFTER_CART_RATE": ("rees46", "purchase_after_cart_rate"),
    "GAP_LOG_MEAN": ("rees46", "gap_log_mean"),
    "GAP_LOG_SD": ("rees46", "gap_log_sd"),
    "PRICE_LOG_SD": ("rees46", "price_log_sd"),
}
CALIBRATED = {"ZIPF_EXPONENT": "zipf_exponent", "SUCCESSOR_RATE": "successor_rate"}
COMPARED = (
    "n_events",
    "n_sessions",
    "n_items",
    "session_length_mean",
    "single_event_share",
    "zipf_exponent",
    "repeat_rate",
    "same_category_rate",
    "markov_hit",
    "popularity_hit",
    "cart_rate",
    "purchase_after_view_rate",
    "purchase_after_cart_rate",
    "conversion_rate",
    "gap_log_mean",
    "gap_log_sd",
    "price_log_sd",
)
TOLERANCE = 5e-4  # relative: constants are written with 4 significant figures


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _agrees(constant: float, recomputed: float) -> bool:
    return math.isclose(constant, recomputed, rel_tol=TOLERANCE, abs_tol=1e-9)


def check_defaults(stats: dict[str, LogStatistics], twins: dict[str, SynthConfig]) -> list[dict]:
    """Every default constant beside its recomputed figure."""
    rows = []
    for name, (sample, statistic) in MEASURED.items():
        rows.append((name, sample, getattr(defaults, name), getattr(stats[sample], statistic)))
    for name, field in CALIBRATED.items():
        rows.append(
            (name, "rees46 (simulated)", getattr(defaults, name), getattr(twins["rees46"], field))
        )
    rees = stats["rees46"]
    for category, share in defaults.CATEGORY_SHARES.items():
        rows.append(
            (f"share[{category}]", "rees46", share, rees.category_shares.get(category, 0.0))
        )
    for category, price in defaults.CATEGORY_PRICE_MEDIANS.items():
        recomputed = rees.category_price_medians.get(category, float("nan"))
        rows.append((f"price[{category}]", "rees46", price, recomputed))
    out = []
    print(f"\n{'default':<28}{'sample':<22}{'in code':>10}{'recomputed':>12}  agrees")
    for name, sample, constant, recomputed in rows:
        ok = _agrees(constant, recomputed)
        verdict = "yes" if ok else "NO"
        print(f"{name:<28}{sample:<22}{_fmt(constant):>10}{_fmt(recomputed):>12}  {verdict}")
        shown = None if math.isnan(recomputed) else recomputed
        out.append(
            {
                "default": name,
                "sample": sample,
                "in_code": constant,
                "recomputed": shown,
                "agrees": ok,
            }
        )
    return out


def side_by_side(title: str, columns: dict[str, LogStatistics]) -> None:
    names = list(columns)
    print(f"\n{title}\n{'statistic':<28}" + "".join(f"{n:>16}" for n in names))
    for key in COMPARED:
        print(f"{key:<28}" + "".join(f"{_fmt(getattr(columns[n], key)):>16}" for n in names))


def time_generation(n_events: int) -> dict[str, float]:
    """Seconds to generate about ``n_events`` events chunk by chunk (nothing is kept)."""
    sessions = round(n_events / defaults.SESSION_LENGTH_MEAN)
    sized = SynthConfig(n_sessions=sessions, n_items=max(5000, n_events // 20))
    start = time.perf_counter()
    produced = sum(len(chunk) for chunk in iter_chunks(sized, seed=0))
    seconds = time.perf_counter() - start
    shape = f"{sized.n_sessions:,} sessions, {sized.n_items:,} items"
    print(f"\ngenerated {produced:,} events ({shape}) in {seconds:.2f} s")
    return {
        "events": produced,
        "sessions": sized.n_sessions,
        "items": sized.n_items,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("FEDPATH_SHARED_DATA", str(REPO.parent / "shared" / "data"))
    parser.add_argument("--shared-data", type=Path, default=Path(default_data))
    parser.add_argument("--scale-events", type=int, default=1_000_000)
    args = parser.parse_args()

    stats = {
        name: measure_log(load_events(args.shared_data / rel, fmt=fmt).events)
        for name, (rel, fmt) in SAMPLES.items()
    }
    twins, twin_stats = {}, {}
    for name, real in stats.items():
        started = time.perf_counter()
        twins[name] = calibrate(real).config
        twin_stats[name] = measure_log(generate(twins[name], seed=0))
        twin = twins[name]
        print(
            f"calibrated a twin of {name} in {time.perf_counter() - started:.0f} s: "
            f"n_items={twin.n_items}, zipf_exponent={twin.zipf_exponent}, "
            f"successor_rate={twin.successor_rate}"
        )
    demo = measure_log(generate(SynthConfig(), seed=0))
    for name in stats:
        side_by_side(
            f"{name}: real sample vs its synthetic twin (seed 0)",
            {"real": stats[name], "synthetic": twin_stats[name]},
        )
    side_by_side("the default demo log (SynthConfig(), seed 0)", {"default": demo})
    agreement = check_defaults(stats, twins)
    timing = time_generation(args.scale_events)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "real": {n: s.as_dict() for n, s in stats.items()},
        "twin_config": {n: c.to_dict() for n, c in twins.items()},
        "twin": {n: s.as_dict() for n, s in twin_stats.items()},
        "default_demo": demo.as_dict(),
        "defaults_vs_recomputed": agreement,
        "generation": timing,
    }
    RESULTS.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    print(f"\nwritten {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
