"""The ServerApp of a deployed federation: ``flwr run`` starts it inside the SuperLink's host.

Its Flower App is fedpath itself: the coordinator writes a minimal ``pyproject.toml`` whose
``[tool.flwr.app.components]`` name this module and ``fedpath.clients.deployed_app`` (both
importable from the installed package, so the app folder ships no code), and passes the path of
its plan as run config. Everything the run does is in ``fedpath.server.deployed.campaign``.
"""

from __future__ import annotations

from pathlib import Path

from flwr.common import Context
from flwr.server import Grid, ServerApp

PLAN_KEY = "fedpath-plan"  # run-config key: the coordinator's plan.json (read on its host)

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    from fedpath.server.deployed.campaign import Campaign
    from fedpath.server.deployed.settings import read_plan
    from fedpath.telemetry import configure_json_logging

    configure_json_logging()
    Campaign(read_plan(Path(str(context.run_config[PLAN_KEY])))).run(grid, context)
