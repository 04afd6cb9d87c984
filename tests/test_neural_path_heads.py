"""The neural action head is class-balanced; the conversion head learns the target it is set to."""

from __future__ import annotations

import pytest
import torch

from fedpath.errors import ConfigError
from fedpath.models.registry import build_model


def test_balanced_weights_by_hand_and_absent_classes_weigh_nothing() -> None:
    # Prepare: 6 views, 2 carts, no purchase, 4 exits, one unknown label
    model = build_model("gru4rec", n_items=3, embedding_size=4, hidden_size=4)
    labels = torch.tensor([0] * 6 + [1] * 2 + [3] * 4 + [-1])

    # Execute
    weights = model._class_weights(labels)

    # Assert: n / (classes present x count) = 12 / (3 x count)
    assert weights.tolist() == pytest.approx([12 / 18, 12 / 6, 0.0, 12 / 12])


def test_unweighted_and_unknown_settings() -> None:
    plain = build_model("gru4rec", n_items=3, embedding_size=4, action_class_weight="none")
    assert plain._class_weights(torch.tensor([0, 0, 3])) is None
    with pytest.raises(ConfigError, match="convert_target must be one of"):
        build_model("gru4rec", n_items=3, convert_target="later")
