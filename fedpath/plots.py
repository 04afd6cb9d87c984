"""PNG plots of runs. matplotlib's Agg backend: no screen on servers or in CI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_curves(
    history: Sequence[Mapping[str, float]],
    *,
    x_key: str,
    y_keys: Sequence[str],
    path: Path,
    title: str,
) -> Path:
    """One panel per metric of ``y_keys`` against ``x_key`` (epochs or rounds)."""
    keys = [k for k in y_keys if any(k in row for row in history)]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(4 * max(len(keys), 1), 3.2))
    axes = [axes] if len(keys) <= 1 else list(axes)
    for ax, key in zip(axes, keys, strict=False):
        rows = [row for row in history if key in row and row[key] is not None]
        ax.plot([row[x_key] for row in rows], [row[key] for row in rows], marker="o")
        ax.set_xlabel(x_key)
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
