"""``python -m fedpath.clients.supernode [--idle-poll S] ARGS``: ``flower-supernode ARGS`` that
exits when its connection to the SuperLink ends, and polls the SuperLink every ``S`` seconds.

Flower 1.42's SuperNode leaves its connection loop when it gives up on the SuperLink (a TLS
handshake that fails after the coordinator's certificate changed, ``--max-wait-time`` spent on
an unreachable SuperLink), logs the error, and returns; but its Runtime API server runs in a
non-daemon thread, so the process stays alive, connected to nothing, and says nothing more. The
same happens when an exception escapes it (a ``ca.crt`` that is not a certificate). Run through
this module, either end is an exit with Flower's own ``SUPERNODE_CONNECTION_ERROR`` code: the
daemon's supervisor sees a process exit, not free text, and starts a fresh SuperNode.

Polling: the SuperNode's loop sleeps a fixed 3 s after every empty pull and 0.5 s between looks
for its ClientApp's reply (``flwr.supernode.start_client_internal``; no flag or variable sets
either). A SecAgg+ round is five exchanges per partner, so those sleeps alone are 15 s or more
a round. ``--idle-poll`` caps both at ``S`` seconds by giving that module a ``time`` whose
``sleep`` is capped, and has it retry a message's arrays that are not uploaded yet within
tenths of a second (``quicken_object_pulls``), not after 1-3 s; everything else about the loop
is Flower's. Each poll is one small HTTPS request to the SuperLink: a partner at 0.25 s sends
four a second while idle.
"""

from __future__ import annotations

import sys
import time
import traceback
from types import SimpleNamespace

from flwr.supercore.exit import ExitCode, flwr_exit
from flwr.supernode import start_client_internal
from flwr.supernode.cli import flower_supernode

from fedpath.federation.flower_env import quicken_object_pulls

IDLE_POLL = "--idle-poll"


def cap_sleeps(seconds: float) -> None:
    """Make the SuperNode's loop sleep at most ``seconds`` between its polls (module doc)."""
    start_client_internal.time = SimpleNamespace(  # type: ignore[assignment]
        **{name: getattr(time, name) for name in dir(time) if not name.startswith("_")},
    )
    start_client_internal.time.sleep = lambda wanted: time.sleep(min(wanted, seconds))
    quicken_object_pulls(start_client_internal)


def main() -> None:
    """Run Flower's SuperNode entry point; turn its return (or its exception) into an exit."""
    if IDLE_POLL in sys.argv:
        at = sys.argv.index(IDLE_POLL)
        cap_sleeps(float(sys.argv[at + 1]))
        del sys.argv[at : at + 2]
    try:
        flower_supernode()
    except Exception:  # whatever it was, the SuperNode is no longer connected
        message = "The SuperNode failed:\n" + traceback.format_exc()
    else:
        message = "The connection to the SuperLink ended and the SuperNode stopped retrying."
    flwr_exit(ExitCode.SUPERNODE_CONNECTION_ERROR, message)


if __name__ == "__main__":
    main()
