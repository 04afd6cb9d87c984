"""The shipped `data=taobao` and `data=diginetica_full` configs, on the real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from fedpath.data.protocol import ProtocolConfig
from fedpath.simulations.pipeline import DataSource, prepare
from fedpath.yamlconf import read_yaml


def test_data_taobao_gives_the_notes_test_cases(shared_data: Path, tmp_path: Path) -> None:
    # Prepare: the config's format and censoring, on the shared file
    config = read_yaml(REPO / "conf" / "data" / "taobao.yaml")
    path = shared_data / "taobao-userbehavior" / "UserBehavior.csv"
    source = DataSource("taobao", path, format=config["format"])

    # Execute
    data = prepare(source, ProtocolConfig(), tmp_path)

    # Assert: the evaluation note's 2,173 test cases (sessions cut per user after 30 min)
    assert data.log.n_rows == 80_106 and data.log.n_quarantined == 0
    assert data.split.stats["test_sessions"] == 650
    assert len(data.test.item_cases) == 2_173


@pytest.mark.slow
def test_fedpath_train_data_diginetica_full_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    run_cli("train", "data=diginetica_full", "model=popularity", f"out={tmp_path}")

    (metrics_path,) = tmp_path.glob("*/metrics.json")
    split = json.loads(metrics_path.read_text())["split"]
    assert (split["test_item_cases"], split["items"]) == (60_858, 43_097)
