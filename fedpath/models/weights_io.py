"""A fitted model as one safetensors file that names what it is, so it can be rebuilt unaided.

The arrays are the model's ``get_weights()``; the file header carries a small JSON document
(model name, ``n_items``, seed, constructor parameters, fedpath version, and the model's
``calibration`` when it has one) under the key ``"fedpath"``. A file written before models
carried a calibration loads as an uncalibrated model, and one written before a model gained an
argument (its class's ``absent_in_old_files``) loads with the value it was saved under. One
file rather than a side-car: a copied or uploaded model cannot lose its description, and the
write is a single atomic rename.
"""

from __future__ import annotations

import inspect
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load, save

import fedpath
from fedpath.errors import DataFormatError
from fedpath.models.base import NextStepModel
from fedpath.models.calibration import Calibration
from fedpath.models.registry import build_model, model_class

METADATA_KEY = "fedpath"
ENCRYPTED_SUFFIX = ".enc"  # a model encrypted at rest (fedpath.privacy.crypto), never read here


def model_params(model: NextStepModel) -> dict[str, Any]:
    """The keyword-only constructor arguments of ``model``'s class chain, read back from it.

    Models follow scikit-learn's convention (each argument stored under its own name), which is
    what lets a file rebuild the model without a per-class serializer. Names in the class's
    ``unsaved_params`` (runtime machinery such as a private trainer) are left out.
    """
    params: dict[str, Any] = {}
    unsaved = set(getattr(model, "unsaved_params", ()))
    for cls in type(model).__mro__:
        if "__init__" in vars(cls):
            for name, parameter in inspect.signature(cls.__init__).parameters.items():
                if parameter.kind is not inspect.Parameter.KEYWORD_ONLY or name in unsaved:
                    continue
                if not hasattr(model, name):
                    raise ValueError(
                        f"{type(model).__name__}.{name} must be stored as an attribute "
                        f"of the same name to be saved, got no such attribute"
                    )
                params.setdefault(name, getattr(model, name))
        if cls is NextStepModel:
            break
    return params


def model_to_bytes(model: NextStepModel) -> bytes:
    """The safetensors file of ``model`` in memory, for writers that must never put it on disk in
    the clear (encryption at rest)."""
    params = model_params(model)
    metadata: dict[str, Any] = {
        "model": model.name,
        "n_items": params.pop("n_items"),
        "seed": params.pop("seed"),
        "params": params,
        "fedpath_version": fedpath.__version__,
    }
    if model.calibration is not None:
        metadata["calibration"] = model.calibration.to_dict()
    arrays = {name: np.ascontiguousarray(a) for name, a in model.get_weights().items()}
    return save(arrays, metadata={METADATA_KEY: json.dumps(metadata)})


def save_weights(path: str | os.PathLike[str], model: NextStepModel) -> Path:
    """Write ``model`` to ``path`` (via a temporary file, so a failed write leaves nothing)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(model_to_bytes(model))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def load_model(path: str | os.PathLike[str]) -> NextStepModel:
    """Rebuild the model saved at ``path`` through the registry and load its weights."""
    path = Path(path)
    if path.name.endswith(ENCRYPTED_SUFFIX):
        raise DataFormatError(
            f"{path}: must be a plain safetensors file, got an encrypted model "
            f"(*{ENCRYPTED_SUFFIX}): load it with its key (fedpath.privacy.crypto.load_model_file)"
        )
    try:
        with safe_open(path, framework="np") as handle:
            header = handle.metadata() or {}
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise DataFormatError(
            f"{path}: must be a readable safetensors file, got {error}"
        ) from error
    return _rebuild(str(path), header, arrays)


def model_from_bytes(data: bytes, *, source: str) -> NextStepModel:
    """Rebuild a model from the bytes of its safetensors file; ``source`` names it in errors."""
    try:
        arrays = load(data)
        (header_size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + header_size]).get("__metadata__") or {}
    except (SafetensorError, struct.error, json.JSONDecodeError, AttributeError) as error:
        raise DataFormatError(
            f"{source}: must be a readable safetensors file, got {error}"
        ) from error
    return _rebuild(source, header, arrays)


def _rebuild(source: str, header: dict[str, str], arrays: dict[str, np.ndarray]) -> NextStepModel:
    if METADATA_KEY not in header:
        raise DataFormatError(
            f"{source}: header must hold fedpath metadata under {METADATA_KEY!r}, "
            f"got keys {sorted(header)}"
        )
    try:
        metadata = json.loads(header[METADATA_KEY])
        name, n_items, seed = metadata["model"], metadata["n_items"], metadata["seed"]
        params = metadata["params"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataFormatError(
            f"{source}: field {METADATA_KEY!r} must be JSON with model, n_items, seed and params, "
            f"got {header[METADATA_KEY][:200]!r}"
        ) from error
    # A file older than one of the class's arguments is rebuilt with the value it was saved under.
    older = getattr(model_class(name), "absent_in_old_files", {})
    model = build_model(name, n_items=n_items, seed=seed, **{**older, **params})
    model.set_weights(arrays)
    if "calibration" in metadata:
        try:
            model.calibration = Calibration.from_dict(metadata["calibration"])
        except (KeyError, TypeError, ValueError) as error:
            raise DataFormatError(
                f"{source}: field 'calibration' must hold temperatures, cutoffs and threshold, "
                f"got {metadata['calibration']!r:.200} ({error})"
            ) from error
    return model
