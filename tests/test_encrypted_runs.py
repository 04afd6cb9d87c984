"""Run folders with `artifacts.encrypt=true`: the model only ever on disk encrypted (AES-256-GCM).

Every run goes through the installed CLI on a small synthetic log with the Markov count model, so
a plain and an encrypted run of the same seed hold the same model, and the encrypted file can be
checked against the plain one prediction for prediction.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from fedpath.data.containers import Cases
from fedpath.errors import ConfigError, DataFormatError
from fedpath.models.base import NextStepModel
from fedpath.models.weights_io import load_model
from fedpath.privacy.audit import verify_audit
from fedpath.privacy.crypto import load_model_file, save_run_model
from fedpath.privacy.errors import DecryptionError
from fedpath.privacy.keys import MODEL_KEY_ENV

KEY = bytes(range(32))
WRONG_KEY = bytes(range(1, 33))
SMALL_RUN = ("model=markov", "data.n_sessions=200", "seed=3")
PLAIN = "model.safetensors"
ENCRYPTED = "model.safetensors.enc"


@dataclass(frozen=True)
class Runs:
    key_file: Path
    plain: Path  # run folder of `fedpath train` without encryption
    encrypted: Path  # the same run with artifacts.encrypt=true


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def encrypt_args(key_file: Path) -> list[str]:
    return ["artifacts.encrypt=true", f"artifacts.model_key={key_file}"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    folder = tmp_path_factory.mktemp("encrypted-runs")
    key_file = folder / "model.key"
    key_file.write_bytes(KEY)
    run_cli("train", *SMALL_RUN, f"out={folder / 'plain'}")
    run_cli("train", *SMALL_RUN, *encrypt_args(key_file), f"out={folder / 'encrypted'}")
    return Runs(key_file, only_run_dir(folder / "plain"), only_run_dir(folder / "encrypted"))


def fedpath(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, with no model key in the environment; may fail."""
    env = {k: v for k, v in os.environ.items() if k != MODEL_KEY_ENV}
    exe = Path(sys.executable).with_name("fedpath")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def assert_no_plain_model(run_dir: Path) -> None:
    """No file anywhere under the run folder is, or holds, a safetensors model in the clear."""
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert not path.name.endswith(".safetensors"), path
        assert b"__metadata__" not in path.read_bytes(), path  # every safetensors header has it


def probe_cases(n_items: int, n: int = 64, max_len: int = 4) -> Cases:
    """Random prefixes over the model's items: enough to tell two models' predictions apart."""
    rng = np.random.default_rng(0)
    return Cases(
        prefixes=rng.integers(0, n_items, size=(n, max_len)),
        prefix_actions=np.zeros((n, max_len), dtype=np.int8),
        lengths=rng.integers(1, max_len + 1, size=n),
        next_item=np.full(n, -1),
        next_action=np.full(n, -1, dtype=np.int8),
        converts=np.zeros(n, dtype=bool),
        session_index=np.arange(n),
    )


def assert_same_predictions(a: NextStepModel, b: NextStepModel) -> None:
    cases = probe_cases(a.n_items)
    pa, pb = a.predict(cases), b.predict(cases)
    np.testing.assert_array_equal(pa.item_scores, pb.item_scores)
    np.testing.assert_array_equal(pa.action_probs, pb.action_probs)
    np.testing.assert_array_equal(pa.convert_prob, pb.convert_prob)


def test_an_encrypted_train_run_keeps_no_plain_model_and_predicts_like_a_plain_run(
    runs: Runs,
) -> None:
    # Execute
    model = load_model_file(runs.encrypted / ENCRYPTED, KEY)

    # Assert: only the encrypted file, and it is the model the plain run of the same seed wrote
    assert (runs.plain / PLAIN).is_file() and not (runs.plain / ENCRYPTED).exists()
    assert_no_plain_model(runs.encrypted)
    assert_same_predictions(model, load_model_file(runs.plain / PLAIN))
    metrics = [
        json.loads((run / "metrics.json").read_text()) for run in (runs.plain, runs.encrypted)
    ]
    assert metrics[0]["test"] == metrics[1]["test"]


def test_the_key_may_come_from_the_environment(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_KEY_ENV, KEY.hex())

    model = load_model_file(runs.encrypted / ENCRYPTED)

    assert_same_predictions(model, load_model_file(runs.plain / PLAIN))


def test_an_encrypted_model_without_any_key_is_refused_naming_it(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MODEL_KEY_ENV, raising=False)

    with pytest.raises(ConfigError, match=rf"{ENCRYPTED}: is an encrypted model.*{MODEL_KEY_ENV}"):
        load_model_file(runs.encrypted / ENCRYPTED)


def test_a_wrong_key_is_refused(runs: Runs) -> None:
    with pytest.raises(DecryptionError, match=rf"{ENCRYPTED}: refused, it does not authenticate"):
        load_model_file(runs.encrypted / ENCRYPTED, WRONG_KEY)


def test_one_flipped_byte_is_refused(runs: Runs, tmp_path: Path) -> None:
    # Prepare: two copies of the run folder under its name (file and folder names are
    # authenticated too), the model of one altered
    intact = shutil.copytree(runs.encrypted, tmp_path / "a" / runs.encrypted.name) / ENCRYPTED
    altered = shutil.copytree(runs.encrypted, tmp_path / "b" / runs.encrypted.name) / ENCRYPTED
    blob = bytearray(altered.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    altered.write_bytes(bytes(blob))

    # Execute / Assert: the intact copy loads, the altered one is refused before any parsing
    load_model_file(intact, KEY)
    with pytest.raises(DecryptionError, match="does not authenticate"):
        load_model_file(altered, KEY)


def test_a_model_copied_from_another_run_folder_under_the_same_name_is_refused(
    runs: Runs, tmp_path: Path
) -> None:
    # Prepare: another run folder with its own encrypted model, same key, same file name
    other = tmp_path / "train-other-run"
    other.mkdir()
    save_run_model(other, load_model_file(runs.encrypted / ENCRYPTED, KEY), KEY)
    load_model_file(other / ENCRYPTED, KEY)  # its own model loads

    # Execute: the first run's model put in its place
    shutil.copy(runs.encrypted / ENCRYPTED, other / ENCRYPTED)

    # Assert
    with pytest.raises(DecryptionError, match=r"train-other-run/model.safetensors.enc: refused"):
        load_model_file(other / ENCRYPTED, KEY)


def test_the_plain_loader_refuses_an_encrypted_model_naming_it(runs: Runs) -> None:
    with pytest.raises(DataFormatError, match=rf"{ENCRYPTED}: must be a plain safetensors file"):
        load_model(runs.encrypted / ENCRYPTED)


def test_an_encrypted_champion_without_its_key_stops_the_gate_before_federating(
    runs: Runs, tmp_path: Path
) -> None:
    # Execute: the gate's champion is read before any partner starts
    proc = fedpath(
        "simulate",
        *SMALL_RUN,
        "strategy=sum",
        "gate=on",
        f"gate.champion={runs.encrypted / ENCRYPTED}",
        f"out={tmp_path}",
    )

    # Assert
    assert proc.returncode == 1
    assert f"{runs.encrypted / ENCRYPTED}: is an encrypted model" in proc.stderr
    assert MODEL_KEY_ENV in proc.stderr
    assert not (only_run_dir(tmp_path) / "results.json").exists()


def test_encryption_without_a_key_stops_the_run_before_it_trains(tmp_path: Path) -> None:
    proc = fedpath("train", *SMALL_RUN, "artifacts.encrypt=true", f"out={tmp_path}")

    assert proc.returncode == 1
    assert "artifacts.encrypt=true needs the model key" in proc.stderr
    assert MODEL_KEY_ENV in proc.stderr
    run_dir = only_run_dir(tmp_path)
    assert not (run_dir / "metrics.json").exists()
    assert not (run_dir / PLAIN).exists() and not (run_dir / ENCRYPTED).exists()


@pytest.mark.slow  # a whole Flower simulation (about 30 s on a shared 2-core machine)
def test_an_encrypted_simulation_keeps_no_plain_model_and_its_trail_hashes_the_encrypted_one(
    runs: Runs, tmp_path: Path
) -> None:
    # Execute: the secure sum of counts is exactly the centralized model of the same data and seed
    run_cli(
        "simulate",
        *SMALL_RUN,
        "strategy=sum",
        "rounds=1",
        "baselines=false",
        "funnel=off",
        *encrypt_args(runs.key_file),
        f"out={tmp_path}",
    )
    run_dir = only_run_dir(tmp_path)
    verified = run_cli("audit", "verify", str(run_dir))

    # Assert
    assert_no_plain_model(run_dir)
    assert_same_predictions(
        load_model_file(run_dir / ENCRYPTED, KEY), load_model_file(runs.plain / PLAIN)
    )
    model_entry = verify_audit(run_dir / "audit.jsonl")[-1].payload
    assert model_entry["model"] == ENCRYPTED
    assert model_entry["sha256"] == hashlib.sha256((run_dir / ENCRYPTED).read_bytes()).hexdigest()
    assert "audit trail intact" in verified.stdout
    with pytest.raises(DecryptionError):
        load_model_file(run_dir / ENCRYPTED, WRONG_KEY)
