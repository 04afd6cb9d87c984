"""A user's mistake is one line on stderr naming the file or key and the fix, never a traceback.

Each case runs the installed `fedpath` command in a subprocess, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DIGINETICA  # pytest puts tests/ on sys.path

REES46_HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def fedpath(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("fedpath")
    env = {
        k: v for k, v in os.environ.items() if k not in ("FEDPATH_SHARED_DATA", "HYDRA_FULL_ERROR")
    }
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The failure's stderr: exactly one line, no traceback, holding every needle."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["data=file", "data.path={tmp}/nope.csv"], ["nope.csv does not exist", "data.path=FILE"]),
        (["data=file", "data.path={tmp}"], ["is a folder", "data.path=FILE"]),
        (["data=file", "data.path={tmp}/header.csv"], ["header.csv: must hold at least one"]),
        (["modle=markov"], ["Could not override 'modle'", "+modle=markov"]),
        (["model=nosuch"], ["Could not find 'model/nosuch'", "choose one of: ", "markov"]),
        (["seed=abc"], ["seed must be an integer, got 'abc'"]),
        (["train.review_threshold=high"], ["train.review_threshold must be a number, got 'high'"]),
        (["model=gru4rec", "model.lr=fast"], ["model.lr must be a number, got 'fast'"]),
        (
            [
                "model=markov",
                "data=file",
                "data.path={tmp}/events.csv",
                "protocol.item_buckets=8",
                "protocol.item_key_path={tmp}/item.key",
            ],
            ["item key file", "item.key must hold at least 16 bytes, got 3"],
        ),
    ],
    ids=[
        "missing-file",
        "directory",
        "header-only",
        "bad-override",
        "bad-choice",
        "not-an-integer",
        "not-a-number",
        "model-not-a-number",
        "short-key",
    ],
)
def test_train_refuses_a_users_mistake_in_one_line(tmp_path, overrides, needles) -> None:
    # Prepare
    (tmp_path / "header.csv").write_text(REES46_HEADER + "\n")
    row = "2019-10-01 00:00:0{s} UTC,view,{item},1,shoes,b,1.0,7,s{n}"
    rows = [row.format(s=k, item=k % 2, n=n) for n in range(5) for k in range(3)]
    (tmp_path / "events.csv").write_text("\n".join([REES46_HEADER, *rows]) + "\n")
    (tmp_path / "item.key").write_bytes(b"abc")
    args = [o.format(tmp=tmp_path) for o in overrides]

    # Execute
    proc = fedpath("train", *args, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)

    # Assert
    line = assert_one_line_error(proc, *needles)
    assert line.startswith("fedpath: error: ") and proc.returncode == 1


def test_simulate_refuses_too_many_partners_in_one_line(tmp_path) -> None:
    proc = fedpath("simulate", "partners=100000", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)

    assert_one_line_error(proc, "fedpath: error: ", "n_partners must be in [2, 1000], got 100000")
    assert proc.returncode == 1


def test_simulate_refuses_a_fractional_round_count_in_one_line(tmp_path) -> None:
    proc = fedpath("simulate", "rounds=2.5", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)

    assert_one_line_error(proc, "fedpath: error: rounds must be an integer, got 2.5")
    assert proc.returncode == 1


def test_simulate_refuses_an_added_key_no_setting_has(tmp_path) -> None:
    # Execute: `+` adds a key Hydra cannot check; the settings dataclass must refuse it by name
    proc = fedpath("simulate", "+secagg.timout=5", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)

    # Assert
    assert_one_line_error(proc, "fedpath: error: secagg.timout is not a setting of secagg")
    assert proc.returncode == 1


def test_a_partner_yaml_that_is_not_utf8_is_refused_in_one_line(tmp_path) -> None:
    # Prepare: a bundle whose partner.yaml was saved as Latin-1
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "partner.yaml").write_bytes("project: café\n".encode("latin-1"))
    (tmp_path / "events.csv").write_text(REES46_HEADER + "\n")

    # Execute
    proc = fedpath("partner", "--bundle", str(bundle), "--data", "events.csv", cwd=tmp_path)

    # Assert
    assert_one_line_error(proc, "partner.yaml: must be UTF-8 text, got byte 0xe9", "as UTF-8")


def test_a_malformed_partner_config_names_its_line(tmp_path) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "mine.yaml").write_text("serving:\n  port: [8080\n")

    proc = fedpath(
        "partner", "--bundle", "bundle", "--data", "x.csv", "--config", "mine.yaml", cwd=tmp_path
    )

    assert_one_line_error(proc, "mine.yaml: must be valid YAML", "at line 3, column 1")


def test_shipped_data_configs_resolve_against_the_project_from_any_folder(
    tmp_path, shared_data
) -> None:
    # Execute: from a folder far from the checkout
    proc = fedpath("train", "data=diginetica", "--cfg", "job", "--resolve", cwd=tmp_path)

    # Assert: the sample beside the checkout, not ../shared/data under tmp_path
    assert proc.returncode == 0, proc.stderr
    path_line = next(line for line in proc.stdout.splitlines() if line.startswith("  path: "))
    path = Path(path_line.removeprefix("  path: "))
    assert path.is_absolute() and path.resolve() == DIGINETICA.resolve()
