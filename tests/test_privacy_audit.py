"""The hash-chained audit trail: every edit, removal, reordering or cut tail is caught."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedpath.privacy.audit import GENESIS, AuditLog, head_path, verify_audit
from fedpath.privacy.errors import AuditChainError

ROUNDS = [
    ("run", {"config": {"rounds": 2}, "code_version": "fedpath 0.1.0"}),
    ("round", {"round": 1, "participants": ["app", "pc"], "dropped_partners": []}),
    ("round", {"round": 2, "participants": ["app"], "dropped_partners": ["pc"]}),
    ("model", {"sha256": "ab" * 32}),
]


def written_trail(folder: Path) -> Path:
    log = AuditLog(folder / "audit.jsonl")
    for kind, payload in ROUNDS:
        log.append(kind, payload)
    return log.path


def rewrite(path: Path, edit) -> None:
    """Apply ``edit`` to the list of parsed entries and write them back, one per line."""
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    entries = edit(entries)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def rehash(entry: dict) -> dict:
    body = {k: v for k, v in entry.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {**body, "hash": hashlib.sha256(text.encode()).hexdigest()}


def test_entries_chain_by_the_hash_of_their_canonical_json(tmp_path) -> None:
    # Execute
    entries = verify_audit(written_trail(tmp_path))

    # Assert: recomputed here with hashlib and json, independently of the module
    assert [e.seq for e in entries] == [0, 1, 2, 3]
    assert entries[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    for entry in entries:
        assert rehash(vars(entry))["hash"] == entry.hash
    head = json.loads(head_path(tmp_path / "audit.jsonl").read_text())
    assert head == {"seq": 3, "hash": entries[-1].hash}


def test_a_reopened_log_continues_the_chain(tmp_path) -> None:
    # Prepare
    path = written_trail(tmp_path)
    last = verify_audit(path)[-1]

    # Execute
    entry = AuditLog(path).append("privacy", {"epsilon": 2.5})

    # Assert
    assert (entry.seq, entry.prev_hash) == (4, last.hash)
    assert len(verify_audit(path)) == 5


def test_an_edited_entry_is_named(tmp_path) -> None:
    # Prepare: a dropped partner erased from round 2
    path = written_trail(tmp_path)
    rewrite(
        path,
        lambda es: [
            *es[:2],
            {**es[2], "payload": {**es[2]["payload"], "dropped_partners": []}},
            es[3],
        ],
    )

    # Execute / Assert
    with pytest.raises(AuditChainError, match=r"entry 2 \(line 3\): hash must match") as caught:
        verify_audit(path)
    assert caught.value.seq == 2


def test_an_edited_entry_with_a_fresh_hash_is_caught_by_the_next_link(tmp_path) -> None:
    # Prepare
    path = written_trail(tmp_path)
    rewrite(path, lambda es: [es[0], rehash({**es[1], "payload": {"round": 1}}), *es[2:]])

    # Execute / Assert: the break is found at entry 2, and entry 1 is named as rewritten
    with pytest.raises(AuditChainError, match="entry 1 was rewritten") as caught:
        verify_audit(path)
    assert caught.value.seq == 1


@pytest.mark.parametrize(
    ("edit", "seq", "message"),
    [
        (lambda es: [es[0], *es[2:]], 1, "seq must be 1, got 2"),
        (lambda es: [es[0], es[2], es[1], es[3]], 1, "seq must be 1, got 2"),
        (lambda es: es[:3], 3, r"entries 3\.\.3 were removed from the end"),
        (lambda es: [], 0, r"entries 0\.\.3 were removed from the end"),
    ],
    ids=["removed", "reordered", "tail-cut", "emptied"],
)
def test_removed_reordered_or_cut_entries_are_caught(
    tmp_path, edit, seq: int, message: str
) -> None:
    # Prepare
    path = written_trail(tmp_path)
    rewrite(path, edit)

    # Execute / Assert
    with pytest.raises(AuditChainError, match=message) as caught:
        verify_audit(path)
    assert caught.value.seq == seq


def test_a_line_cut_mid_entry_is_caught(tmp_path) -> None:
    # Prepare
    path = written_trail(tmp_path)
    path.write_bytes(path.read_bytes()[:-40])

    # Execute / Assert
    with pytest.raises(AuditChainError, match=r"entry 3 .* cut line"):
        verify_audit(path)


def test_a_missing_head_is_caught(tmp_path) -> None:
    # Prepare
    path = written_trail(tmp_path)
    head_path(path).unlink()

    # Execute / Assert
    with pytest.raises(
        AuditChainError, match=r"audit\.head\.json: the head of audit\.jsonl must exist"
    ):
        verify_audit(path)


def test_a_rewritten_log_and_head_pass_alone_but_not_against_a_kept_head(tmp_path) -> None:
    # Prepare: the chain's limit - whoever rewrites everything, head included, is only caught
    # by a head hash kept elsewhere
    path = written_trail(tmp_path)
    kept = verify_audit(path)[-1].hash
    path.unlink()
    head_path(path).unlink()
    log = AuditLog(path)
    for kind, payload in ROUNDS[:2]:
        log.append(kind, payload)

    # Execute / Assert
    assert len(verify_audit(path)) == 2
    with pytest.raises(AuditChainError, match="expected head"):
        verify_audit(path, expected_head=kept)


def test_a_broken_trail_is_not_extended(tmp_path) -> None:
    # Prepare
    path = written_trail(tmp_path)
    rewrite(path, lambda es: [es[0], *es[2:]])

    # Execute / Assert
    with pytest.raises(AuditChainError):
        AuditLog(path)


def test_a_payload_that_is_not_plain_json_is_refused_before_writing(tmp_path) -> None:
    # Prepare
    path = written_trail(tmp_path)
    size = path.stat().st_size

    # Execute / Assert
    with pytest.raises(ValueError, match="without NaN"):
        AuditLog(path).append("round", {"loss": float("nan")})
    assert path.stat().st_size == size


def fedpath(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("fedpath")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_cli_verify_passes_an_intact_run_and_names_the_first_bad_entry(tmp_path) -> None:
    # Prepare
    path = written_trail(tmp_path)
    head = verify_audit(path)[-1].hash

    # Execute
    intact = fedpath("audit", "verify", str(tmp_path), "--head", head)
    rewrite(
        path,
        lambda es: [*es[:1], {**es[1], "payload": {"round": 1, "participants": ["app"]}}, *es[2:]],
    )
    broken = fedpath("audit", "verify", str(tmp_path))

    # Assert
    assert intact.returncode == 0, intact.stderr
    assert "4 entries" in intact.stdout and head in intact.stdout
    assert broken.returncode == 1
    assert "entry 1 (line 2): hash must match" in broken.stderr


# A child that opens a trail, says so, waits for the go file, then appends ``count`` entries,
# each tagged with its writer.
APPEND_LOOP = """
import pathlib, sys, time
from fedpath.privacy.audit import AuditLog
log = AuditLog(sys.argv[1])
print("ready", flush=True)
while not pathlib.Path(sys.argv[4]).exists():
    time.sleep(0.001)
for i in range(int(sys.argv[2])):
    log.append("round", {"writer": sys.argv[3], "i": i})
"""


def test_two_processes_appending_to_one_trail_keep_it_a_chain(tmp_path) -> None:
    # Prepare: a trail with one entry, opened by two writers before either appends
    path, go = written_trail(tmp_path), tmp_path / "go"
    count = 40

    # Execute: both open the trail, then both append at once
    children = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND_LOOP, str(path), str(count), writer, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for writer in ("a", "b")
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    go.touch()
    codes = [child.wait(timeout=120) for child in children]

    # Assert: every entry is in the chain once, with whole sequence numbers and a matching head
    assert codes == [0, 0]
    entries = verify_audit(path)
    assert [e.seq for e in entries] == list(range(len(ROUNDS) + 2 * count))
    for writer in ("a", "b"):
        mine = [e.payload["i"] for e in entries if e.payload.get("writer") == writer]
        assert mine == list(range(count))


def finished_run(folder: Path) -> Path:
    """A run folder as `fedpath simulate` leaves it: artifacts, then a model entry hashing them."""
    files = {"model.safetensors": b"weights v1", "results.json": b"{}", "report.md": b"# run"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    log = AuditLog(folder / "audit.jsonl")
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    log.append("model", {"model": "model.safetensors", "files": hashes})
    return folder


def test_cli_verify_rehashes_the_artifacts_the_trail_recorded(tmp_path) -> None:
    # Prepare
    run = finished_run(tmp_path)
    intact = fedpath("audit", "verify", str(run))

    # Execute: the model replaced after the run, the chain untouched
    (run / "model.safetensors").write_bytes(b"weights v2")
    altered = fedpath("audit", "verify", str(run))
    (run / "model.safetensors").unlink()
    missing = fedpath("audit", "verify", str(run))

    # Assert
    assert intact.returncode == 0, intact.stderr
    assert "3 recorded artifacts match" in intact.stdout
    assert altered.returncode == 1
    assert "model.safetensors: SHA-256 must be" in altered.stderr and "altered" in altered.stderr
    assert missing.returncode == 1
    assert "model.safetensors: must exist" in missing.stderr
