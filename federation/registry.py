"""A model registry on disk: every global model version, what it scored, where it came from, and
which one is promoted (the one partners serve).

One folder, one model file and one JSON card per version, and ``promoted.json`` naming the
promoted version with the champion / challenger decision behind it (every decision is also
appended to ``promotions.jsonl``). Writes are atomic and the card is written after its model,
so a reader never sees a version whose model is missing, and a crash leaves the previous
promotion standing. With a key, models are encrypted at rest (``fedpath.privacy.crypto``).

The same class is the partner's local store of published models: the serving process watches
``promoted.json`` and loads whatever it names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedpath.durable import append_line, atomic_write, canonical_json, sha256_hex, utc_now
from fedpath.errors import DataFormatError
from fedpath.models.base import NextStepModel
from fedpath.models.weights_io import model_from_bytes, model_to_bytes
from fedpath.privacy.crypto import MODEL_KIND, decrypt_file, encrypt_file
from fedpath.telemetry import json_safe

PROMOTED = "promoted.json"
PROMOTIONS = "promotions.jsonl"


@dataclass(frozen=True)
class ModelVersion:
    """The card of one version. ``parent`` is the version it was trained from (its lineage)."""

    version: int
    model: str  # model name (gru4rec, markov, ...)
    campaign: str  # the training campaign (one coordinator run of all its rounds)
    round: int
    config_hash: str  # digest of the federation contract and training settings
    parent: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    sha256: str = ""  # of the model file as stored
    created: str = ""


@dataclass(frozen=True)
class Promotion:
    """The promoted version and the decision that promoted it."""

    version: int
    decision: dict[str, Any]
    at: str


class ModelRegistry:
    """Versions ``v0001``, ``v0002``, ... in ``root``; ``key`` encrypts models at rest."""

    def __init__(self, root: Path, *, key: bytes | None = None) -> None:
        self.root = Path(root)
        self.key = key
        self.root.mkdir(parents=True, exist_ok=True)

    def _model_path(self, version: int) -> Path:
        return self.root / f"v{version:04d}.model"

    def _card_path(self, version: int) -> Path:
        return self.root / f"v{version:04d}.json"

    def register(
        self,
        model: NextStepModel,
        *,
        campaign: str,
        round: int,
        config_hash: str,
        parent: int | None,
        metrics: Mapping[str, float] | None = None,
        version: int | None = None,
    ) -> ModelVersion:
        """Store ``model`` as a new version (or as ``version``, a number handed down by the
        coordinator). Registering the same campaign round again replaces that round's version:
        a round rerun after a crash must not leave two versions of one round."""
        if version is None:
            earlier = self.find(campaign, round)
            version = earlier.version if earlier else self._next_version()
        path = self._model_path(version)
        data = model_to_bytes(model)
        if self.key is None:
            atomic_write(path, data)
        else:
            encrypt_file(path, data, self.key, kind=MODEL_KIND)
        card = ModelVersion(
            version=version,
            model=model.name,
            campaign=campaign,
            round=round,
            config_hash=config_hash,
            parent=parent,
            metrics={k: float(v) for k, v in (metrics or {}).items() if math.isfinite(v)},
            sha256=sha256_hex(path.read_bytes()),
            created=utc_now(),
        )
        atomic_write(self._card_path(version), canonical_json(asdict(card)))
        return card

    def versions(self) -> list[ModelVersion]:
        """Every version whose card is written, oldest first."""
        return [self._card(path) for path in sorted(self.root.glob("v*.json"))]

    def get(self, version: int) -> ModelVersion:
        path = self._card_path(version)
        if not path.is_file():
            raise DataFormatError(f"{path}: model version {version} is not in the registry")
        return self._card(path)

    def find(self, campaign: str, round: int) -> ModelVersion | None:
        """The version of ``round`` of ``campaign``, if one is registered."""
        matches = [v for v in self.versions() if (v.campaign, v.round) == (campaign, round)]
        return matches[-1] if matches else None

    def load(self, version: int) -> NextStepModel:
        """The model of ``version``, refused if its file is not the one the card describes."""
        card = self.get(version)
        path = self._model_path(version)
        stored = path.read_bytes()
        if sha256_hex(stored) != card.sha256:
            raise DataFormatError(
                f"{path}: sha256 must be {card.sha256} as registered, got {sha256_hex(stored)}"
            )
        data = stored if self.key is None else decrypt_file(path, self.key, kind=MODEL_KIND)
        return model_from_bytes(data, source=str(path))

    def promote(self, version: int, decision: Mapping[str, Any]) -> Promotion:
        """Make ``version`` the one served; ``decision`` says why (gate scores and rule)."""
        self.get(version)
        promotion = Promotion(version=version, decision=dict(decision), at=utc_now())
        record = canonical_json(json_safe(asdict(promotion)))
        with (self.root / PROMOTIONS).open("ab") as history:
            append_line(history, record)
        atomic_write(self.root / PROMOTED, record)
        return promotion

    def promoted(self) -> Promotion | None:
        path = self.root / PROMOTED
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_bytes())
            return Promotion(version=int(data["version"]), decision=data["decision"], at=data["at"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise DataFormatError(
                f"{path}: must hold version, decision and at, got {error!r}"
            ) from None

    def _next_version(self) -> int:
        versions = self.versions()
        return versions[-1].version + 1 if versions else 1

    def _card(self, path: Path) -> ModelVersion:
        try:
            return ModelVersion(**json.loads(path.read_bytes()))
        except (json.JSONDecodeError, TypeError) as error:
            raise DataFormatError(
                f"{path}: must be a model card with the fields of ModelVersion, got {error}"
            ) from None
