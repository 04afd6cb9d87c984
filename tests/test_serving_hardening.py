"""The /predict server against hostile callers: tokens, half-sent requests, any bytes, JSON logs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fedpath.clients.serving import ServingSettings, open_service
from fedpath.clients.serving_server import ServingServer, serving_token, start_server
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Session
from fedpath.data.hashing import ItemHasher
from fedpath.errors import ConfigError
from fedpath.federation.registry import ModelRegistry
from fedpath.models.markov import MarkovChain
from fedpath.server.provision import load_bundle, load_project, provision

N_BUCKETS = 16
KEY = b"partners-shared-item-key-0123456"
TOKEN = "s3cret-token"
READ_TIMEOUT = 0.5


def start(folder: Path, token: str | None = None, **overrides: object) -> ServingServer:
    """A server over a registry with one promoted Markov chain."""
    hasher = ItemHasher(KEY, N_BUCKETS)
    catalog: list[str | None] = [f"item-{b}" for b in range(N_BUCKETS)]
    registry = ModelRegistry(folder / "models", key=None)
    path = Session(key="s", items=np.array([1, 2, 3]), actions=np.zeros(3, np.int8), start=0)
    model = MarkovChain(n_items=N_BUCKETS).fit(expand_prefixes([path], max_len=5))
    card = registry.register(model, campaign="c1", round=1, config_hash="h", parent=None)
    registry.promote(card.version, {"promoted": True})
    values = {"port": 0, "reload_every": 60.0, "read_timeout": READ_TIMEOUT} | overrides
    service = open_service(
        folder / "models",
        model_key=None,
        hasher=hasher,
        catalog=catalog,
        reference=None,
        settings=ServingSettings(**values),  # type: ignore[arg-type]
        max_len=5,
    )
    return start_server(service, token)


def call(
    port: int, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", body, headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def raw(port: int, data: bytes, *, close_write: bool = False) -> bytes:
    """Send ``data`` on a fresh connection; everything the server says until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server = start(tmp_path_factory.mktemp("serving"))
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[int]:
    server = start(tmp_path, TOKEN)
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_a_token_guards_every_path(guarded: int) -> None:
    # Prepare
    body = json.dumps({"items": ["a"]}).encode()
    right = {"Authorization": f"Bearer {TOKEN}"}

    # Execute
    missing = [call(guarded, path) for path in ("/health", "/metrics")]
    missing.append(call(guarded, "/predict", body))
    wrong = call(guarded, "/predict", body, {"Authorization": f"Bearer {TOKEN}x"})
    allowed = call(guarded, "/predict", body, right)

    # Assert
    assert [status for status, _ in missing] == [401, 401, 401]
    assert "Bearer" in json.loads(missing[2][1])["error"]
    assert wrong[0] == 401
    assert allowed[0] == 200 and json.loads(allowed[1])["model_version"] == 1


def test_a_worker_pool_keeps_the_token_the_read_deadline_and_the_4xx(tmp_path: Path) -> None:
    # Prepare: the same app in two worker processes
    server = start(tmp_path, TOKEN, workers=2)
    port, right = server.server_address[1], {"Authorization": f"Bearer {TOKEN}"}

    try:
        # Execute
        missing = call(port, "/predict", json.dumps({"items": ["a"]}).encode())
        malformed = call(port, "/predict", b"{", right)
        allowed = call(port, "/predict", json.dumps({"items": ["a"]}).encode(), right)
        half_sent = raw(port, b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # headers never end
    finally:
        server.shutdown()

    # Assert
    assert missing[0] == 401
    assert malformed[0] == 400 and "JSON" in json.loads(malformed[1])["error"]
    assert allowed[0] == 200
    assert half_sent.startswith(b"HTTP/1.1 408")


_POOL_SCRIPT = """
import os, signal, sys, time
sys.path.insert(0, {tests!r})
from test_serving_hardening import start
from pathlib import Path
server = start(Path({folder!r}), workers=2)
print(*[p.pid for p in server.processes], flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


def test_workers_stop_when_their_daemon_is_killed(tmp_path: Path) -> None:
    # Prepare: a process serving through two workers, then SIGKILLed (no shutdown runs)
    script = _POOL_SCRIPT.format(tests=str(Path(__file__).parent), folder=str(tmp_path))
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert daemon.stdout is not None
    workers = [int(pid) for pid in daemon.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)

    # Execute
    daemon.kill()
    daemon.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)

    # Assert: no orphan keeps serving
    assert not any(_alive(pid) for pid in workers)


def test_off_loopback_needs_a_token_to_start(tmp_path: Path) -> None:
    # Execute / Assert: no token, a host other machines reach: refused before binding
    with pytest.raises(ConfigError, match=r"serving.host must be a loopback address"):
        start(tmp_path, host="0.0.0.0")


def test_the_token_comes_from_the_bundle_off_loopback_only(tmp_path: Path) -> None:
    # Prepare: a kit with two partners; an old bundle without its token
    project = {
        "name": "shopfed",
        "coordinator": {"host": "coord.example.org", "port": 9443},
        "partners": [{"name": "alpha"}, {"name": "beta"}],
        "federation": {"model": "markov", "item_buckets": 64},
    }
    (tmp_path / "project.yaml").write_text(yaml.safe_dump(project))
    kit = provision(load_project(tmp_path / "project.yaml"), tmp_path / "kit")
    alpha, beta = (load_bundle(kit.partners[name]) for name in ("alpha", "beta"))
    beta.serving_token.unlink()

    # Execute
    off_loopback = serving_token("0.0.0.0", alpha.serving_token)
    on_loopback = [serving_token(host, beta.serving_token) for host in ("127.0.0.1", "::1")]
    with pytest.raises(ConfigError, match=r"serving.token must hold the bearer token") as refusal:
        serving_token("10.0.0.5", beta.serving_token)

    # Assert
    assert off_loopback == alpha.serving_token.read_text() and len(off_loopback) >= 40
    assert alpha.serving_token.stat().st_mode & 0o777 == 0o600
    assert on_loopback == [None, None]
    assert "'10.0.0.5' is not loopback" in str(refusal.value)


def test_a_half_sent_request_is_answered_408_and_closed(port: int) -> None:
    # Prepare: headers announce 20 bytes, 5 arrive, and the client waits
    partial = b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{"ite'

    # Execute: raw() returns only once the server closes the connection
    reply = raw(port, partial)
    idle = raw(port, b"")  # a connection that never sends a byte

    # Assert
    assert reply.startswith(b"HTTP/1.1 408")
    assert idle.startswith(b"HTTP/1.1 408")
    assert call(port, "/predict", b'{"items": ["a"]}')[0] == 200  # the server is still up


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"items": ["\\ud800"]}', "lone surrogate"),
        (b'{"items": ["a"], "actions": ["\\udfff"]}', "actions must be among"),
        (b'{"items": [1' + b"0" * 5000 + b"]}", "body must be JSON"),
        (b'{"items": ["a"], "k": ' + b"9" * 5000 + b"}", "body must be JSON"),
        (b"[" * 30_000 + b"]" * 30_000, "body must be JSON"),
        (b'{"items": ' + b"[" * 900 + b"]" * 900 + b"}", "items must be"),
        (b'{"items": ["a"], "actions": [' + b"[" * 900 + b"]" * 900 + b"]}", "actions must be"),
        (b'{"items": ["a"], "k": ' + b"[" * 900 + b"]" * 900 + b"}", "k must be an int"),
        (b'{"items": [1.5]}', "items must be"),
        (b'{"items": ["a"], "k": NaN}', "k must be an int"),
        (b"\xff\xfe\x00", "body must be JSON"),
    ],
)
def test_malformed_json_of_every_kind_answers_400(port: int, body: bytes, reason: str) -> None:
    # Execute
    status, text = call(port, "/predict", body)

    # Assert
    assert status == 400
    assert reason in json.loads(text)["error"]


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
REQUEST_LIKE = st.fixed_dictionaries(
    {"items": st.lists(JSON_SCALARS, max_size=4)},
    optional={
        "actions": st.lists(st.sampled_from(["view", "cart", "buy", 1]) | JSON_VALUES),
        "k": JSON_VALUES,
    },
)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=st.binary(max_size=300) | (JSON_VALUES | REQUEST_LIKE).map(json.dumps).map(str.encode))
@example(body=b'{"items": ["\\ud800"]}')
def test_any_body_gets_an_answer_below_500(port: int, body: bytes) -> None:
    # Execute
    status, text = call(port, "/predict", body)

    # Assert
    assert status < 500, text
    assert status == 200 or "error" in json.loads(text)


@FUZZ
@given(head=st.sampled_from([b"", b"POST /predict HTTP/1.1\r\n", b"GET "]), tail=st.binary())
@example(head=b"", tail=b"\x16\x03\x01\x02\x00\x01\x00")  # a TLS hello to a plain-HTTP port
def test_any_bytes_on_the_wire_get_no_5xx(port: int, head: bytes, tail: bytes) -> None:
    # Execute: the client sends its bytes and closes its side, or the read deadline ends it
    reply = raw(port, head + tail, close_write=True)

    # Assert: silence, or an HTTP status below 500
    status = reply.split(b"\r\n", 1)[0]
    assert not reply or (status.startswith(b"HTTP/1.1 ") and int(status.split()[1]) < 500), reply


SERVER_SCRIPT = """
import sys, threading
from pathlib import Path
from fedpath.clients.serving import ServingSettings, open_service
from fedpath.clients.serving_server import start_server
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Session
from fedpath.data.hashing import ItemHasher
from fedpath.telemetry import configure_json_logging

configure_json_logging()
service = open_service(
    Path(sys.argv[1]), model_key=None, hasher=ItemHasher(b"k" * 32, 8), catalog=[None] * 8,
    reference=None, settings=ServingSettings(port=0, read_timeout=0.5), max_len=5,
)
server = start_server(service, "t0ken")
print(server.server_address[1], flush=True)
threading.Event().wait()
"""


def test_hostile_clients_leave_only_json_lines_in_the_log(tmp_path: Path) -> None:
    # Prepare: the daemon's logging, in a process of its own
    log_file = tmp_path / "stderr.log"
    with log_file.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(SERVER_SCRIPT), str(tmp_path / "models")],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        port = int(process.stdout.readline())  # type: ignore[union-attr]

        # Execute: a garbage request line, a client that drops mid-body, a slow one, no token
        garbage = raw(port, b"\x00\x01 nonsense\r\n\r\n")
        dropped = (
            b"POST /predict HTTP/1.1\r\nAuthorization: Bearer t0ken\r\nContent-Length: 99\r\n\r\n{"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(dropped)
        slow = raw(port, b"GET /health HTTP/1.1\r\n")
        unauthorized = call(port, "/health")[0]
    finally:
        process.terminate()
        process.wait(timeout=30)

    # Assert
    lines = log_file.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is JSON, or this raises
    events = {entry.get("event") for entry in entries}
    assert garbage.startswith(b"HTTP/1.1 400") and slow.startswith(b"HTTP/1.1 408")
    assert unauthorized == 401
    assert {"serving_started", "read_timeout", "unauthorized"} <= events
    assert any("Invalid HTTP request" in entry["msg"] for entry in entries)
    assert not any("Traceback" in line for line in lines)
