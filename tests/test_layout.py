"""The README's folder table is the tree: every package folder is listed, findable, and layered."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_rows() -> dict[str, str]:
    """Folder -> import path, from the README's Layout table."""
    text = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| [\d—]+ \| `([^`]+)` \| (?:`([^`]+)`|—) \|", text, flags=re.M)
    return {folder: module for folder, module in rows}


def package_folders() -> set[str]:
    """Top-level folders that hold Python packages (an ``__init__.py``)."""
    return {f"{p.parent.name}/" for p in REPO.glob("*/__init__.py")}


def test_every_package_folder_is_in_the_readme_table_and_nothing_else() -> None:
    # Prepare
    rows = readme_rows()
    listed = {folder for folder in rows if folder.endswith("/")}
    extra = {folder for folder in listed if not (REPO / folder).is_dir()}

    # Assert
    assert package_folders() <= listed, f"missing from README: {package_folders() - listed}"
    assert not extra, f"README lists folders the tree does not have: {extra}"


def test_every_import_path_in_the_table_is_a_file_path() -> None:
    # Execute: fedpath.x is fedpath/x (a folder, a symlink to a design-card folder, or a module)
    unreachable = [
        module
        for module in readme_rows().values()
        if module
        and not (REPO / module.replace(".", "/")).is_dir()
        and not (REPO / (module.replace(".", "/") + ".py")).is_file()
    ]

    # Assert
    assert not unreachable, f"import paths with no file under fedpath/: {unreachable}"


def test_the_table_layers_are_the_import_linter_contract() -> None:
    # Prepare: the contract's layers, highest first, as the README numbers them lowest first
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    text = (REPO / "README.md").read_text()
    numbered = re.findall(r"^\| (\d+) \| `[^`]+` \| `([^`]+)` \|", text, flags=re.M)

    # Execute
    by_layer: dict[int, set[str]] = {}
    for number, module in numbered:
        by_layer.setdefault(int(number), set()).add(module)
    readme = [by_layer[n] for n in sorted(by_layer) if n > 0]  # layer 0 is the core contract

    # Assert
    assert readme == [set(layer.split(" | ")) for layer in reversed(layers)]
