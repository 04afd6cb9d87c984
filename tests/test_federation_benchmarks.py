"""What decides a federation benchmark figure: partition labels, memory, processes, ratios."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO
from session_data import session

from fedpath.data.containers import SplitDataset


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The benchmark scripts as modules (they import their siblings by name)."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import fedbench
    import federation_quality
    import scale
    import secagg_overhead

    return SimpleNamespace(
        fedbench=fedbench, quality=federation_quality, scale=scale, secagg=secagg_overhead
    )


def test_popularity_bands_label_sessions_by_their_first_items_share_of_train_occurrences(
    bench: SimpleNamespace,
) -> None:
    # Prepare: train occurrences 0:6, 1:2, 2:1, 3:1 (10 in all). Most popular first, the
    # occurrences before each item are 0, 6, 8, 9: with 2 bands, item 0 is band 0 (0*2//10) and
    # items 1, 2, 3 are band 1 (6*2//10, 8*2//10, 9*2//10).
    web = partial(session, channel="web")
    split = SplitDataset(
        train=[web("a", [0, 1, 0]), web("b", [2, 0, 0, 3]), web("c", [0, 1, 0])],
        valid=[web("d", [1, 0])],
        test=[web("e", [3, 2]), web("f", [0, 2])],
        vocab=["i0", "i1", "i2", "i3"],
    )

    # Execute
    banded = bench.quality.popularity_bands(split, 2)

    # Assert
    labels = {s.key: s.category for part in (banded.train, banded.valid, banded.test) for s in part}
    assert labels == {
        "a": "popularity-band-0",
        "b": "popularity-band-1",
        "c": "popularity-band-0",
        "d": "popularity-band-1",
        "e": "popularity-band-1",
        "f": "popularity-band-0",
    }
    assert [s.channel for s in banded.train] == ["web"] * 3  # nothing else changes
    assert np.array_equal(banded.train[1].items, split.train[1].items)


def test_tree_memory_counts_a_child_process_and_its_memory(bench: SimpleNamespace) -> None:
    # Prepare: a child that holds 100 MB of touched memory.
    alone_pss, alone_rss, alone_count = bench.scale.tree_memory_mb(os.getpid())
    code = "import sys, time; x = b'1' * (100 * 2**20); print('ready', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"

        # Execute
        pss, rss, count = bench.scale.tree_memory_mb(os.getpid())
    finally:
        child.kill()
        child.wait()

    # Assert
    assert count == alone_count + 1
    assert rss - alone_rss >= 100
    assert pss - alone_pss >= 100
    assert pss <= rss


def test_in_fresh_process_answers_from_another_process(bench: SimpleNamespace) -> None:
    # Execute: os.getpid, called over there.
    pid = bench.fedbench.in_fresh_process(os.getpid)

    # Assert
    assert pid != os.getpid()


def test_in_fresh_process_raises_when_the_process_dies_without_answering(
    bench: SimpleNamespace,
) -> None:
    # Execute / Assert: os._exit(3) ends the process before it can reply.
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="exit 3"):
        bench.fedbench.in_fresh_process(os._exit, 3)
    assert time.perf_counter() - started < 60


def test_log_shares_is_two_log2_neighbours_plus_self(bench: SimpleNamespace) -> None:
    # 10 partners: ceil(log2 10) = 4 -> 9 shares; 100: ceil(log2 100) = 7 -> 15.
    assert (bench.secagg.log_shares(10), bench.secagg.log_shares(100)) == (9, 15)


def test_ratios_pool_each_settings_rounds_and_range_over_repeats(bench: SimpleNamespace) -> None:
    # Prepare: two turns at 10 partners; plain's fit rounds pool to a median of 3 s
    # ([2, 2, 2, 4, 4, 4]), the SecAgg+ setting's to 6 s; per turn 6/2 = 3 and 6/4 = 1.5.
    def run(partners: int, setting: str, repeat: int, fit: float, round_: float) -> dict:
        return {
            "partners": partners,
            "setting": setting,
            "num_shares": "k",
            "repeat": repeat,
            "fit_seconds": [fit] * 3,
            "round_seconds": [round_] * 3,
            "dropped": 0,
        }

    runs = [
        run(10, "plain", 0, 2.0, 4.0),
        run(10, "log shares", 0, 6.0, 9.0),
        run(10, "plain", 1, 4.0, 8.0),
        run(10, "log shares", 1, 6.0, 9.0),
        run(100, "plain", 0, 10.0, 10.0),
        run(100, "log shares", 0, 15.0, 30.0),
    ]

    # Execute
    rows = bench.secagg.summarize(runs)

    # Assert
    by_key = {(r["partners"], r["setting"]): r for r in rows}
    secure = by_key[10, "log shares"]
    assert (secure["fit_seconds"], secure["fit_ratio"]) == (6.0, 2.0)
    assert secure["fit_ratio_range"] == [1.5, 3.0]
    assert secure["round_ratio"] == 9.0 / 6.0
    assert by_key[10, "plain"]["fit_ratio"] == 1.0
    assert (by_key[100, "log shares"]["fit_ratio"], by_key[100, "log shares"]["round_ratio"]) == (
        1.5,
        3.0,
    )


def test_gru4rec_federation_lays_overrides_over_the_model_config(bench: SimpleNamespace) -> None:
    # Execute: the scale benchmark's small model, sampled at 10%.
    config = bench.fedbench.gru4rec_federation(2, {"hidden_size": 16}, fraction_fit=0.1)

    # Assert: the override wins, the rest is conf/model/gru4rec.yaml's, the name is not a param.
    assert (config.model, config.rounds, config.fraction_fit) == ("gru4rec", 2, 0.1)
    assert config.model_params["hidden_size"] == 16
    assert "embedding_size" in config.model_params and "name" not in config.model_params
