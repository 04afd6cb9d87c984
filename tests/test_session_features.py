"""The wide part of the neural heads: features worked by hand, a model that trains with them, and
a conversion rule the encoder cannot see but the features carry."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load, save

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Cases, Session
from fedpath.metrics.classification import conversion_auc
from fedpath.models.registry import build_model
from fedpath.models.session_features import N_SESSION_FEATURES, session_features
from fedpath.models.weights_io import METADATA_KEY, model_from_bytes, model_to_bytes

TINY = {"embedding_size": 8, "batch_size": 32, "dropout": 0.0}
SMALL_GRU = {"hidden_size": 8}  # GRU4Rec and NARM only
ADAM = {"optimizer": "adam", "momentum": 0.0, "lr": 0.01}


def test_features_of_a_hand_made_prefix() -> None:
    # Prepare: view cart view purchase, and a lone view; padding holds junk the code must skip
    actions = np.array([[0, 1, 0, 2, 1, 1], [0, 2, 2, 2, 2, 2]], dtype=np.int8)
    lengths = np.array([4, 1])

    # Execute
    features = session_features(actions, lengths)

    # Assert: log1p length | log1p counts | shares | ever | last one-hot | second-last one-hot
    first = [np.log1p(4), *np.log1p([2, 1, 1]), 0.5, 0.25, 0.25, 1, 1, 1, 0, 0, 1, 1, 0, 0]
    lone = [np.log1p(1), np.log1p(1), 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    assert features.shape == (2, N_SESSION_FEATURES)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, [first, lone], rtol=1e-6)


def funnel_log(n_sessions: int, seed: int) -> Cases:
    """Random items; every other session carts in its first three steps and pays at its end.

    Whether the prefix holds a cart decides conversion; the items say nothing about it.
    """
    rng = np.random.default_rng(seed)
    sessions = []
    for i in range(n_sessions):
        length = int(rng.integers(6, 10))
        actions = np.zeros(length, np.int8)
        if i % 2:
            actions[int(rng.integers(0, 3))] = 1
            actions[-1] = 2
        items = rng.integers(0, 30, length)
        sessions.append(Session(key=str(i), items=items, actions=actions, start=i))
    return expand_prefixes(sessions, max_len=12)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_cart_the_encoder_no_longer_reads_still_decides_conversion() -> None:
    # Prepare: the encoder reads the last 3 steps, the cart is often further back; the features
    # count the whole prefix
    train, test = funnel_log(120, seed=1), funnel_log(80, seed=2)
    settings = {"n_items": 30, "seed": 0, "epochs": 3, "max_len": 3, **ADAM, **TINY, **SMALL_GRU}

    # Execute
    aucs = {}
    for wide in (False, True):
        model = build_model("gru4rec", session_features=wide, **settings).fit(train)
        aucs[wide] = conversion_auc(model.predict(test).convert_prob, test.converts)

    # Assert: seed 0 gives about 0.75 without the wide part and 0.95 with it
    assert aucs[True] > 0.9
    assert aucs[True] > aucs[False] + 0.1


@pytest.mark.parametrize("name", ["gru4rec", "narm", "sasrec"])
def test_a_model_with_session_features_trains_predicts_and_moves_its_wide_weights(name) -> None:
    # Prepare
    cases = funnel_log(20, seed=3)
    shape = {} if name == "sasrec" else SMALL_GRU
    model = build_model(name, n_items=30, seed=0, epochs=2, **ADAM, **TINY, **shape)
    assert model.session_features  # the shipped default
    before = model.get_weights()

    # Execute
    model.fit(cases)
    predictions = model.predict(cases)

    # Assert: zero-initialized wide weights learned something; outputs keep the contract
    after = model.get_weights()
    for array in ("action_wide.weight", "convert_wide.weight"):
        assert not before[array].any()
        assert after[array].any()
    assert after["convert_wide.weight"].shape == (1, N_SESSION_FEATURES)
    assert {"action_wide.weight", "convert_wide.weight"} <= set(model.output_layer_names())
    np.testing.assert_allclose(predictions.action_probs.sum(axis=1), 1, rtol=1e-5)
    assert ((predictions.convert_prob > 0) & (predictions.convert_prob < 1)).all()


def test_a_model_file_from_before_the_wide_part_loads_without_it() -> None:
    # Prepare: an old file: no wide arrays and no session_features among its parameters
    old = build_model("gru4rec", n_items=30, seed=0, session_features=False, **TINY, **SMALL_GRU)
    data = model_to_bytes(old)
    (size,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(json.loads(data[8 : 8 + size])["__metadata__"][METADATA_KEY])
    del metadata["params"]["session_features"]
    legacy = save(load(data), metadata={METADATA_KEY: json.dumps(metadata)})
    cases = funnel_log(4, seed=4)

    # Execute
    loaded = model_from_bytes(legacy, source="old.safetensors")

    # Assert
    assert loaded.session_features is False
    np.testing.assert_array_equal(
        loaded.predict(cases).convert_prob, old.predict(cases).convert_prob
    )
