"""Encrypted models and checkpoints: real AES-256-GCM, refused whenever they do not authenticate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from test_neural_models import N_ITEMS, cases_of  # pytest puts tests/ on sys.path

from fedpath.errors import ConfigError
from fedpath.models.base import NextStepModel
from fedpath.models.registry import build_model
from fedpath.models.weights_io import model_to_bytes, save_weights
from fedpath.privacy.crypto import (
    CHECKPOINT_KIND,
    MODEL_KIND,
    decrypt_bytes,
    encrypt_file,
    load_encrypted_model,
    save_encrypted_model,
)
from fedpath.privacy.errors import DecryptionError
from fedpath.privacy.keys import MODEL_KEY_ENV, model_key

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CASES = cases_of([[0, 1, 2, 3], [4, 5, 6], [7, 8, 9, 10, 11]])


@pytest.fixture(scope="module")
def model() -> NextStepModel:
    """A fitted GRU4Rec: the real arrays of a checkpoint, not a toy byte string."""
    return build_model("gru4rec", n_items=N_ITEMS, seed=3, embedding_size=8, epochs=1).fit(CASES)


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_encrypted_model_round_trips_and_holds_no_plaintext(model, tmp_path) -> None:
    # Execute
    path = save_encrypted_model(tmp_path / "model.fpenc", model, KEY)
    loaded = load_encrypted_model(path, KEY)

    # Assert: same predictions; the file shows neither the safetensors header nor array names
    np.testing.assert_array_equal(
        loaded.predict(CASES).item_scores, model.predict(CASES).item_scores
    )
    data = path.read_bytes()
    assert data.startswith(b"FPENC\x01")
    for plain_marker in (b"__metadata__", b"gru4rec", *(n.encode() for n in model.get_weights())):
        assert plain_marker not in data
    assert len(data) == 5 + 2 + len(MODEL_KIND) + 12 + len(model_to_bytes(model)) + 16
    assert not list(tmp_path.glob(".*partial"))


def test_file_follows_the_documented_layout(tmp_path) -> None:
    # Prepare: build a file by hand from the module doc, with the cipher alone
    nonce = b"\x07" * 12
    header = b"FPENC" + bytes([1, len(CHECKPOINT_KIND)]) + CHECKPOINT_KIND.encode() + nonce
    body = AESGCM(KEY).encrypt(nonce, b"round 3 weights", header + b"\x00" + b"ckpt-3.bin")

    # Execute
    plain = decrypt_bytes(
        header + body, KEY, kind=CHECKPOINT_KIND, name="ckpt-3.bin", source="hand-made"
    )

    # Assert
    assert plain == b"round 3 weights"


@pytest.mark.parametrize(
    ("where", "offset"),
    [("magic", 0), ("kind", 7), ("nonce", 13), ("ciphertext", 40), ("tag", -1)],
)
def test_a_tampered_checkpoint_is_refused(model, tmp_path, where: str, offset: int) -> None:
    # Prepare: one bit flipped somewhere in the file
    path = save_encrypted_model(tmp_path / "model.fpenc", model, KEY)
    flip(path, offset)

    # Execute / Assert: refused with a reason that names the file
    with pytest.raises(DecryptionError, match=r"model\.fpenc"):
        load_encrypted_model(path, KEY)


def test_a_truncated_file_is_refused(model, tmp_path) -> None:
    # Prepare
    path = save_encrypted_model(tmp_path / "model.fpenc", model, KEY)
    path.write_bytes(path.read_bytes()[:-100])

    # Execute / Assert
    with pytest.raises(DecryptionError, match="does not authenticate"):
        load_encrypted_model(path, KEY)


def test_the_wrong_key_is_refused(model, tmp_path) -> None:
    # Prepare
    path = save_encrypted_model(tmp_path / "model.fpenc", model, KEY)

    # Execute / Assert
    with pytest.raises(DecryptionError, match="another key"):
        load_encrypted_model(path, OTHER_KEY)


def test_a_renamed_file_is_refused(model, tmp_path) -> None:
    # Prepare: the name is bound into the tag, so swapping two runs' files is caught
    path = save_encrypted_model(tmp_path / "round-1.fpenc", model, KEY)
    moved = path.rename(tmp_path / "round-9.fpenc")

    # Execute / Assert
    with pytest.raises(DecryptionError, match="renamed"):
        load_encrypted_model(moved, KEY)


def test_a_checkpoint_is_not_loaded_as_a_model(tmp_path) -> None:
    # Prepare
    path = encrypt_file(tmp_path / "state.fpenc", b"optimizer state", KEY, kind=CHECKPOINT_KIND)

    # Execute / Assert
    with pytest.raises(DecryptionError, match="must hold a 'model', got a 'checkpoint'"):
        load_encrypted_model(path, KEY)


def test_a_plain_safetensors_file_is_not_taken_for_an_encrypted_one(model, tmp_path) -> None:
    # Prepare
    path = save_weights(tmp_path / "model.safetensors", model)

    # Execute / Assert
    with pytest.raises(DecryptionError, match="FPENC"):
        load_encrypted_model(path, KEY)


def test_model_key_comes_from_a_file_else_the_environment(tmp_path, monkeypatch) -> None:
    # Prepare
    key_file = tmp_path / "model.key"
    key_file.write_bytes(OTHER_KEY)
    monkeypatch.setenv(MODEL_KEY_ENV, KEY.hex())

    # Execute / Assert: the file wins over the variable; without a file the variable is used
    assert model_key(key_file) == OTHER_KEY
    assert model_key() == KEY


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x01" * 16, "exactly 32 key bytes, got 16"), (KEY.hex().encode(), "got 64")],
)
def test_a_key_file_of_the_wrong_size_is_refused(tmp_path, content: bytes, message: str) -> None:
    # Prepare: a 128-bit key, and a hex text file instead of raw bytes
    key_file = tmp_path / "model.key"
    key_file.write_bytes(content)

    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        model_key(key_file)


def test_no_key_at_all_is_refused(monkeypatch) -> None:
    # Prepare
    monkeypatch.delenv(MODEL_KEY_ENV, raising=False)

    # Execute / Assert
    with pytest.raises(ConfigError, match=r"\$FEDPATH_MODEL_KEY, got neither"):
        model_key()


def test_a_key_variable_that_is_not_hex_is_refused_without_echoing_it(monkeypatch) -> None:
    # Prepare
    monkeypatch.setenv(MODEL_KEY_ENV, "not-hex-secret-material")

    # Execute / Assert
    with pytest.raises(ConfigError, match="hex digits") as caught:
        model_key()
    assert "secret" not in str(caught.value)
