"""``python -m fedpath.clients.clientapp_host --runtime-api-address HOST:PORT``: the partner's
long-lived ClientApp process, so that a message costs a fork, not an interpreter start.

Under Flower 1.42's default ``subprocess`` isolation the SuperNode's SuperExec starts a fresh
``flwr-clientapp`` for every message (five per partner per SecAgg+ round), and each imports
Python, Flower, torch and fedpath again: seconds per message on a busy core. The partner's
SuperNode runs with ``--isolation process`` instead, which leaves launching ClientApps to a
SuperExec run beside it, and this process, started and supervised by the partner daemon, is that
SuperExec: Flower's own loop (``run_superexec``: acquire a task from the SuperNode's Runtime API,
launch it, every ``--task-poll`` seconds) with one part changed, the executor. Where Flower's
executor execs ``flwr-clientapp --token T``, :class:`ForkExecutor` forks this process, which has
imported all of that once, and the child runs what ``flwr-clientapp`` runs (``run_clientapp``:
pull the message and context, call the ClientApp, push the reply and context back) and exits.

Why a process per message still, not a loop inside this one: Flower's task runner ends in
``flwr_exit`` and installs its own signal handlers, one failing or hanging message must not take
the next ones down, and a fresh address space per message keeps what SecAgg+ holds between
stages where Flower keeps it (the context the SuperNode stores), never in a warm process.

Fork safety: this process never runs a torch operation, so no thread pool exists to be copied
half-held; in the child, the exit handlers Flower registered for this process (closing its
Runtime API client, whose socket the child shares) are dropped before the task starts.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from logging import WARNING
from pathlib import Path

import flwr.supercore.superexec.run_superexec as superexec
from flwr.supercore import log
from flwr.supercore.constant import TaskType
from flwr.supercore.exit import exit_handler
from flwr.supercore.superexec.executor.subprocess_executor import SubprocessExecutor
from flwr.supercore.superexec.executor.types import ExecutionSpec, LaunchResult
from flwr.supercore.tls import validate_and_resolve_root_certificates
from flwr.supernode.runtime.run_clientapp import run_clientapp

WARM_MODULES = (  # imported once here; every forked ClientApp finds them loaded
    "torch",
    "torch._dynamo",  # torch.optim imports it on an optimizer's first step (2 s)
    "opacus.accountants",  # the DP accountant (5 s on first use)
    "fedpath.clients.deployed_app",
    "fedpath.clients.partner",
    "fedpath.evaluate",
    "fedpath.models.gru4rec",
    "fedpath.models.narm",
    "fedpath.models.sasrec",
    "fedpath.privacy.dp.client",
    "fedpath.privacy.dp.session",
)


class ForkExecutor:
    """Flower's ``Executor`` protocol: a ClientApp task runs in a fork of this process; any
    other task type goes to Flower's own subprocess executor."""

    def __init__(self) -> None:
        self._fallback = SubprocessExecutor()
        self._host = os.getpid()
        self.children: set[int] = set()

    def get_eligible_capacity(
        self, supported_task_types: set[TaskType], **_: object
    ) -> tuple[set[TaskType], set[str]]:
        return supported_task_types, set()  # a fork needs no capacity gate

    def wait_for_capacity(self, *_: object, **__: object) -> None:
        return None

    def launch(self, spec: ExecutionSpec) -> LaunchResult:
        if spec.task_type != TaskType.CLIENT_APP:
            return self._fallback.launch(spec)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_task(spec)  # never returns
        self.children.add(pid)
        return LaunchResult.accepted()

    def reconcile(self) -> None:
        """Reap finished ClientApps, logging any that failed."""
        for pid in list(self.children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                continue
            self.children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                log(WARNING, "ClientApp task process %d exited with code %d", pid, code)

    def close(self) -> None:
        if os.getpid() != self._host:
            return
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _run_task(spec: ExecutionSpec) -> None:
    """In the forked child: Flower's ClientApp task runner, then exit with its status."""
    code = 1
    try:
        exit_handler.registered_exit_handlers.clear()  # the host's, not this task's
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        run_clientapp(
            runtime_api_address=spec.runtime_api_address,
            token=spec.token,
            insecure=spec.insecure,
            certificates=validate_and_resolve_root_certificates(
                spec.root_certificates_path, spec.insecure
            ),
            parent_pid=spec.parent_pid,
            runtime_dependency_install=spec.runtime_dependency_install,
        )
        code = 0
    except SystemExit as end:  # run_clientapp always ends in flwr_exit
        code = end.code if isinstance(end.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no atexit handler of the host runs in its child


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fedpath.clients.clientapp_host",
        description="The partner's warm ClientApp: Flower's SuperExec, forking per message.",
    )
    parser.add_argument("--runtime-api-address", required=True, help="the SuperNode's")
    parser.add_argument("--task-poll", type=float, required=True, help="seconds between polls")
    parser.add_argument(
        "--superexec-auth-secret-file", type=Path, help="the secret its SuperNode asks for"
    )
    args = parser.parse_args()
    secret = args.superexec_auth_secret_file

    # Flower reads its poll interval from the environment (0.01 to 60 s; 1 s by default)
    os.environ["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = str(args.task_poll)
    for module in WARM_MODULES:
        importlib.import_module(module)
    executor = ForkExecutor()
    superexec.get_executor = lambda *_, **__: executor  # Flower's loop, this executor
    superexec.run_superexec(
        runtime_api_address=args.runtime_api_address,
        insecure=True,  # the SuperNode's Runtime API on loopback
        superexec_auth_secret=None if secret is None else secret.read_bytes(),
    )


if __name__ == "__main__":
    main()
