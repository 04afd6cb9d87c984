"""The per-partner privacy ledger: refusals, restarts, crashes mid-write, concurrent runs, and
cut ledgers that must stop the partner until an operator recovers them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedpath.durable import head_path
from fedpath.privacy.dp.budget import PrivacyRefusal
from fedpath.privacy.dp.client import PartnerPrivacy, ledger_path
from fedpath.privacy.dp.config import PrivacySettings, SessionDP
from fedpath.privacy.dp.ledger import CHARGE, RECOVERY_RUN, LedgerLog, PrivacyLedger
from fedpath.privacy.errors import BudgetExceededError, LedgerCorruptError, LedgerTruncatedError

# A child that charges in a loop and acknowledges each charge once charge() has returned.
CHARGE_LOOP = """
import sys
from fedpath.privacy.dp.ledger import PrivacyLedger
ledger = PrivacyLedger(sys.argv[1], budget_epsilon=float(sys.argv[2]), delta=0.5, partner="shop-a")
for i in range(int(sys.argv[3])):
    try:
        ledger.charge(f"{sys.argv[4]}-{i}", 0.25, 1e-9, note="n" * int(sys.argv[5]))
    except Exception as error:
        print("refused", type(error).__name__, flush=True)
        continue
    print("charged", i, flush=True)
"""


def charge_loop(
    path: Path, *, budget: float, count: int, tag: str, note_bytes: int = 100
) -> subprocess.Popen[str]:
    args = [str(path), str(budget), str(count), tag, str(note_bytes)]
    return subprocess.Popen(
        [sys.executable, "-c", CHARGE_LOOP, *args], stdout=subprocess.PIPE, text=True
    )


def test_charges_add_up_and_survive_a_restart(tmp_path) -> None:
    # Prepare
    path = tmp_path / "ledger.jsonl"
    ledger = PrivacyLedger(path, budget_epsilon=8.0, delta=1e-5, partner="shop-a")

    # Execute
    ledger.charge("run-1", 1.5, 1e-6, note="dp-sgd sigma 1.1")
    ledger.charge("run-2", 2.5, 2e-6)
    reopened = PrivacyLedger(path, budget_epsilon=8.0, delta=1e-5, partner="shop-a")

    # Assert
    assert reopened.spent() == 4.0
    assert reopened.spent_delta() == pytest.approx(3e-6)
    assert reopened.remaining() == 4.0
    assert [e.data["run_id"] for e in reopened.charges()] == ["run-1", "run-2"]
    assert reopened.charges()[0].data["note"] == "dp-sgd sigma 1.1"


def test_a_charge_past_the_budget_is_refused_and_not_recorded(tmp_path) -> None:
    # Prepare
    path = tmp_path / "ledger.jsonl"
    ledger = PrivacyLedger(path, budget_epsilon=8.0, delta=1e-5, partner="shop-a")
    ledger.charge("run-1", 6.0, 1e-6)
    size = path.stat().st_size

    # Execute
    with pytest.raises(BudgetExceededError) as refused:
        ledger.charge("run-2", 3.0, 1e-6)

    # Assert: the message says who, the budget, what was spent and what was asked
    message = str(refused.value)
    for fact in ("'shop-a'", "epsilon 3", "spent 6", "budget 8", "only 2 is left"):
        assert fact in message
    assert (refused.value.budget, refused.value.spent, refused.value.requested) == (8.0, 6.0, 3.0)
    assert path.stat().st_size == size
    assert ledger.spent() == 6.0


def test_the_last_of_the_budget_can_be_spent_exactly(tmp_path) -> None:
    # Prepare
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl", budget_epsilon=8.0, delta=1e-5)
    ledger.charge("run-1", 6.0, 0.0)

    # Execute / Assert
    assert ledger.can_afford(2.0) and not ledger.can_afford(2.001)
    ledger.charge("run-2", 2.0, 0.0)
    assert not ledger.can_afford(1e-6)
    assert ledger.can_afford(0.0)


def test_delta_has_its_own_budget(tmp_path) -> None:
    # Prepare
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl", budget_epsilon=100.0, delta=1e-5)
    ledger.charge("run-1", 1.0, 8e-6)

    # Execute / Assert
    with pytest.raises(BudgetExceededError, match="delta"):
        ledger.charge("run-2", 1.0, 3e-6)


@pytest.mark.parametrize(("epsilon", "delta"), [(-1.0, 0.0), (float("nan"), 0.0), (1.0, 1.0)])
def test_impossible_costs_are_refused(tmp_path, epsilon: float, delta: float) -> None:
    # Prepare
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl", budget_epsilon=8.0, delta=0.5)

    # Execute / Assert
    with pytest.raises(ValueError, match="must be"):
        ledger.charge("run-1", epsilon, delta)


def test_a_torn_last_line_is_ignored_then_cut_before_the_next_charge(tmp_path) -> None:
    # Prepare: a complete charge, then half a line as a crash during write() leaves it
    path = tmp_path / "ledger.jsonl"
    PrivacyLedger(path, budget_epsilon=8.0, delta=0.5).charge("run-1", 1.0, 0.0)
    with path.open("ab") as handle:
        handle.write(b'{"data":{"delta":0.0,"epsilon":5.0,"note":"","partn')

    # Execute
    ledger = PrivacyLedger(path, budget_epsilon=8.0, delta=0.5)
    spent_before = ledger.spent()
    ledger.charge("run-2", 2.0, 0.0)

    # Assert: the torn charge never counted, and is gone from the file
    assert spent_before == 1.0
    assert ledger.spent() == 3.0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert [json.loads(line)["seq"] for line in lines[:-1]] == [0, 1]


def test_an_edited_entry_makes_the_ledger_refuse_to_open(tmp_path) -> None:
    # Prepare: someone lowers a past charge
    path = tmp_path / "ledger.jsonl"
    ledger = PrivacyLedger(path, budget_epsilon=8.0, delta=0.5)
    ledger.charge("run-1", 4.0, 0.0)
    ledger.charge("run-2", 1.0, 0.0)
    path.write_text(path.read_text().replace('"epsilon":4.0', '"epsilon":0.5'))

    # Execute / Assert
    with pytest.raises(LedgerCorruptError, match=r"ledger.jsonl: line 1: field sha256"):
        PrivacyLedger(path, budget_epsilon=8.0, delta=0.5)


def test_a_removed_entry_makes_the_ledger_refuse_to_open(tmp_path) -> None:
    # Prepare
    path = tmp_path / "ledger.jsonl"
    ledger = PrivacyLedger(path, budget_epsilon=8.0, delta=0.5)
    for run in ("run-1", "run-2", "run-3"):
        ledger.charge(run, 1.0, 0.0)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])

    # Execute / Assert
    with pytest.raises(LedgerCorruptError, match="line 2: field seq must be 1, got 2"):
        PrivacyLedger(path, budget_epsilon=8.0, delta=0.5)


def test_a_kill_during_the_write_of_a_charge_leaves_the_charges_before_it(tmp_path) -> None:
    # Prepare: two charges on disk, then a child writing a 16 MB entry (the kernel copies it in
    # pieces and stops at a fatal signal, so a kill while the file grows tears the line)
    path = tmp_path / "ledger.jsonl"
    ledger = PrivacyLedger(path, budget_epsilon=8.0, delta=0.5, partner="shop-a")
    ledger.charge("run-1", 1.0, 0.0)
    ledger.charge("run-2", 0.5, 0.0)
    size = path.stat().st_size
    torn = False

    # Execute: SIGKILL as soon as the file starts growing; retry if the write was too quick
    for attempt in range(5):
        child = charge_loop(path, budget=8.0, count=1, tag=f"big{attempt}", note_bytes=16 << 20)
        while path.stat().st_size <= size and child.poll() is None:
            time.sleep(0.0005)
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
        torn = not path.read_bytes().endswith(b"\n")
        if torn:
            break
        size = path.stat().st_size

    # Assert: a torn line was really left, it counts for nothing, and the ledger goes on
    assert torn, "no kill landed inside the write in 5 tries"
    reopened = PrivacyLedger(path, budget_epsilon=8.0, delta=0.5, partner="shop-a")
    spent = reopened.spent()
    assert spent == 1.5 + 0.25 * (len(reopened.charges()) - 2)
    reopened.charge("run-3", 2.0, 0.0)
    charges = reopened.charges()
    assert [e.seq for e in charges] == list(range(len(charges)))
    assert charges[-1].data["run_id"] == "run-3" and reopened.spent() == spent + 2.0
    assert path.read_bytes().endswith(b"\n")


def test_kills_while_charging_in_a_loop_lose_no_acknowledged_charge(tmp_path) -> None:
    # Prepare / Execute: three times, SIGKILL a process charging as fast as it can
    path = tmp_path / "ledger.jsonl"
    acknowledged = 0
    for attempt in range(3):
        child = charge_loop(path, budget=1e6, count=10_000, tag=f"loop{attempt}", note_bytes=4096)
        assert child.stdout is not None
        for _ in range(20 + 7 * attempt):
            assert child.stdout.readline().startswith("charged")
            acknowledged += 1
        time.sleep(0.01 * attempt)
        os.kill(child.pid, signal.SIGKILL)
        acknowledged += child.communicate()[0].count("charged")

    # Assert: every charge that returned is there; at most one more per kill got in before the
    # kill; sequence numbers are whole and the total is exact (0.25 is exact in binary)
    ledger = PrivacyLedger(path, budget_epsilon=1e6, delta=0.5, partner="shop-a")
    charges = ledger.charges()
    assert acknowledged <= len(charges) <= acknowledged + 3
    assert [e.seq for e in charges] == list(range(len(charges)))
    assert ledger.spent() == 0.25 * len(charges)
    ledger.charge("after-the-kills", 1.0, 0.0)
    assert path.read_bytes().endswith(b"\n")
    assert ledger.charges()[-1].seq == len(charges)


def test_two_runs_charging_at_once_cannot_overspend(tmp_path) -> None:
    # Prepare: budget for exactly 12 charges of 0.25, two processes asking for 10 each
    path = tmp_path / "ledger.jsonl"

    # Execute
    children = [charge_loop(path, budget=3.0, count=10, tag=tag) for tag in ("a", "b")]
    outputs = [child.communicate(timeout=120)[0] for child in children]

    # Assert: 12 accepted in all, 8 refused, and the ledger agrees
    assert sum(out.count("charged") for out in outputs) == 12
    assert sum(out.count("refused BudgetExceededError") for out in outputs) == 8
    ledger = PrivacyLedger(path, budget_epsilon=3.0, delta=0.5)
    assert ledger.spent() == 3.0
    assert all(e.kind == CHARGE for e in ledger.charges())


def charged_ledger(path: Path, epsilons: list[float]) -> PrivacyLedger:
    ledger = PrivacyLedger(path, budget_epsilon=8.0, delta=0.5, partner="shop-a")
    for number, epsilon in enumerate(epsilons):
        ledger.charge(f"run-{number}", epsilon, 0.0)
    return ledger


def test_a_ledger_cut_to_its_first_line_refuses_instead_of_spending_less(tmp_path) -> None:
    # Prepare: 4.0 charged in four lines, then the file cut back to its first line
    path = tmp_path / "ledger.jsonl"
    charged_ledger(path, [1.0, 1.0, 1.0, 1.0])
    path.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n")

    # Execute / Assert: no reading of 1.0, a typed refusal naming the file and the head
    with pytest.raises(LedgerTruncatedError) as caught:
        PrivacyLedger(path, budget_epsilon=8.0, delta=0.5)
    assert (caught.value.recorded, caught.value.held) == (4, 1)
    assert str(path) in str(caught.value) and "epsilon 4 charged" in str(caught.value)
    assert "fedpath partner recover-ledger" in str(caught.value)
    with pytest.raises(LedgerTruncatedError):
        LedgerLog(path).append(CHARGE, {"run_id": "x", "epsilon": 0.1, "delta": 0.0})
    assert path.read_bytes().count(b"\n") == 1  # the refused append left the file alone


def test_a_ledger_cut_inside_an_acknowledged_line_refuses(tmp_path) -> None:
    # Prepare: the last acknowledged line loses its second half (and its newline)
    path = tmp_path / "ledger.jsonl"
    charged_ledger(path, [1.0, 3.0])
    data = path.read_bytes()
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    path.write_bytes(data[: last_start + (len(data) - last_start) // 2])

    # Execute / Assert: unlike a torn line the head never counted, this one was acknowledged
    with pytest.raises(LedgerTruncatedError, match=r"must hold the 2 entries .* got 1 complete"):
        PrivacyLedger(path, budget_epsilon=8.0, delta=0.5)


@pytest.mark.parametrize("damage", ["head removed", "ledger removed", "head of another ledger"])
def test_a_ledger_and_head_that_disagree_refuse(tmp_path, damage: str) -> None:
    # Prepare
    path, other = tmp_path / "ledger.jsonl", tmp_path / "other.jsonl"
    charged_ledger(path, [1.0, 2.0])
    charged_ledger(other, [0.5, 0.5])
    if damage == "head removed":
        head_path(path).unlink()
    elif damage == "ledger removed":
        path.unlink()
    else:
        head_path(path).write_bytes(head_path(other).read_bytes())

    # Execute / Assert
    with pytest.raises(LedgerCorruptError, match="ledger"):
        PrivacyLedger(path, budget_epsilon=8.0, delta=0.5)


def test_a_partner_with_a_cut_ledger_refuses_to_train(tmp_path) -> None:
    # Prepare: partner 0's ledger cut to one of its two charges
    session = SessionDP(
        noise_multiplier=3.0, clip_norm=1.0, sample_rate=0.25, ledger_dir=str(tmp_path)
    )
    privacy = PartnerPrivacy(
        settings=PrivacySettings(delta=1e-5, session=session),
        run_id="run-a",
        n_partners=2,
        sampled=2,
        secagg=False,
    )
    privacy.charge(0, epochs_per_round=1, count_model=False)
    privacy.charge(0, epochs_per_round=1, count_model=False)
    path = ledger_path(session, 0)
    path.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n")

    # Execute / Assert: the refusal the coordinator counts, with the ledger's reason
    with pytest.raises(
        PrivacyRefusal, match=r"privacy-budget-refusal partner=0: .*must hold the 2"
    ):
        privacy.charge(0, epochs_per_round=1, count_model=False)
    assert path.read_bytes().count(b"\n") == 1


def test_recover_ledger_charges_what_was_lost_and_lets_the_partner_go_on(tmp_path) -> None:
    # Prepare: 4.0 charged, cut to 1.0
    path = tmp_path / "ledger.jsonl"
    charged_ledger(path, [1.0, 1.0, 2.0])
    path.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n")

    # Execute: the operator's command
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("fedpath")),
            "partner",
            "recover-ledger",
            "--ledger",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    # Assert: the lost 3.0 is charged again, the head agrees, a second recovery is refused
    assert done.returncode == 0, done.stderr
    assert "epsilon 3, delta 0 charged" in done.stdout
    ledger = PrivacyLedger(path, budget_epsilon=8.0, delta=0.5)
    assert ledger.spent() == 4.0
    assert ledger.charges()[-1].data["run_id"] == RECOVERY_RUN
    with pytest.raises(ValueError, match="nothing was lost"):
        LedgerLog(path).recover(epsilon=None, delta=None)


def test_recover_ledger_without_a_head_needs_the_loss_stated(tmp_path) -> None:
    # Prepare
    path = tmp_path / "ledger.jsonl"
    charged_ledger(path, [1.0])
    head_path(path).unlink()

    # Execute / Assert
    with pytest.raises(ValueError, match="epsilon and delta must be given"):
        LedgerLog(path).recover(epsilon=None, delta=None)
    LedgerLog(path).recover(epsilon=2.5, delta=0.0)
    assert PrivacyLedger(path, budget_epsilon=8.0, delta=0.5).spent() == 3.5
