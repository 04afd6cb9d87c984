"""Hydra configuration groups (data/, model/, train/, ...); shipped as package data.

Importing the package (Hydra does, to read ``pkg://fedpath.conf``) registers the resolver
``${fedpath.project:}``: the folder of the checkout that holds the ``fedpath`` package, so a
shipped config can name the samples beside the project (``../shared/data``) however deep or far
the command is started from. A plain relative path would follow the current folder instead.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

import fedpath

PROJECT_RESOLVER = "fedpath.project"


def project_folder() -> str:
    """The checkout holding the ``fedpath`` package (site-packages for a wheel install)."""
    return str(Path(fedpath.__file__).resolve().parent.parent)


OmegaConf.register_new_resolver(PROJECT_RESOLVER, project_folder, replace=True)
