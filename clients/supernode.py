"""``python -m fedpath.clients.supernode ARGS``: ``flower-supernode ARGS`` that exits when its
connection to the SuperLink ends.

Flower 1.42's SuperNode leaves its connection loop when it gives up on the SuperLink (a TLS
handshake that fails after the coordinator's certificate changed, ``--max-wait-time`` spent on
an unreachable SuperLink), logs the error, and returns; but its Runtime API server runs in a
non-daemon thread, so the process stays alive, connected to nothing, and says nothing more. The
same happens when an exception escapes it (a ``ca.crt`` that is not a certificate). Run through
this module, either end is an exit with Flower's own ``SUPERNODE_CONNECTION_ERROR`` code: the
daemon's supervisor sees a process exit, not free text, and starts a fresh SuperNode.
"""

from __future__ import annotations

import traceback

from flwr.supercore.exit import ExitCode, flwr_exit
from flwr.supernode.cli import flower_supernode


def main() -> None:
    """Run Flower's SuperNode entry point; turn its return (or its exception) into an exit."""
    try:
        flower_supernode()
    except Exception:  # whatever it was, the SuperNode is no longer connected
        message = "The SuperNode failed:\n" + traceback.format_exc()
    else:
        message = "The connection to the SuperLink ended and the SuperNode stopped retrying."
    flwr_exit(ExitCode.SUPERNODE_CONNECTION_ERROR, message)


if __name__ == "__main__":
    main()
