"""Shared fixtures: where the real public logs live, and how to run the installed CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DIGINETICA = SHARED_DATA / "diginetica-sample" / "sample_train-item-views.csv"
REES46 = SHARED_DATA / "rees46-multicategory-sample" / "2019-Oct-head.csv"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real samples beside the project.

    A developer without the samples may skip the tests that need them; CI (``CI=true``) may not,
    or a checkout without the data would pass without testing anything on real logs.
    """
    if not SHARED_DATA.is_dir():
        missing = f"real samples not found at {SHARED_DATA} (../shared/data beside the repo)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{missing}; CI must run every test on the real data", pytrace=False)
        pytest.skip(missing)
    return SHARED_DATA


def run_cli(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed `fedpath` console command as a user would, failing with its output."""
    exe = Path(sys.executable).with_name("fedpath")
    proc = subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"fedpath {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def one_thread():
    """One torch thread, as in a partner process: two threads on busy cores run slower."""
    import torch  # here, so tests that never train do not pay for importing torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
