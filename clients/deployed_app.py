"""The ClientApp of a deployed federation, run by each partner's SuperNode.

Each message is answered in a process of its own (a fork of the partner's warm ClientApp host,
``clients/clientapp_host.py``, which imported the model code once; a plain ``flwr-clientapp``
run imports it again), so this module imports only Flower and the wire keys at the top:
SecAgg+'s key-exchange and unmasking stages are answered by the mod without ever building the
partner, and only the stages that train or evaluate load it.
The node's ``--node-config`` names the runtime file the partner daemon wrote (bundle, prepared
cases, local registry); the partner's log itself was prepared by the daemon and never leaves it.

Both mods enforce the partner's own contract, whatever the coordinator asks: SecAgg+ when it
says so, and its partner-level DP (clipping, and under SecAgg+ the partner's share of the noise,
added before masking). Session-level DP is applied by the partner itself as it trains.
"""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context, Message, MessageType
from flwr.client import Client, ClientApp
from flwr.client.mod import make_ffn, secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from fedpath.federation.keys import CAMPAIGN_KEY

RUNTIME_KEY = "fedpath-runtime"  # node-config key: path of the daemon's runtime.json


def runtime_path(context: Context) -> Path:
    return Path(str(context.node_config[RUNTIME_KEY]))


def campaign(context: Context) -> str:
    return str(context.run_config.get(CAMPAIGN_KEY, ""))


def client_fn(context: Context) -> Client:
    from fedpath.clients.partner import load_deployed_partner

    return load_deployed_partner(runtime_path(context), campaign(context)).to_client()


def contract_secagg_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """SecAgg+ exactly when the federation contract says so, whatever the coordinator asks.

    Under a SecAgg+ contract a training request without SecAgg+ stages would make the partner
    send its update in the clear; it is refused instead (the coordinator sees an error reply).
    """
    if not json.loads(runtime_path(context).read_text())["secagg"]:
        return call_next(msg, context)
    unmasked = RECORD_KEY_CONFIGS not in msg.content.config_records
    if msg.metadata.message_type == MessageType.TRAIN and unmasked:
        raise PermissionError(
            "training requests must carry SecAgg+ stages under this federation's contract, "
            "got an unmasked one: the update is not sent"
        )
    return secaggplus_mod(msg, context, call_next)


def contract_privacy_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """The contract's partner-level DP mods around the partner (none without partner-level DP).

    Under SecAgg+ the SecAgg+ mod calls this one only in the stage that trains, so the bundle is
    read once a round; the reply is clipped and noised before the SecAgg+ mod masks it.
    """
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)
    from fedpath.clients.partner import Runtime, deployed_privacy
    from fedpath.federation.layout import load_bundle

    runtime = Runtime.read(runtime_path(context))
    privacy = deployed_privacy(
        load_bundle(Path(runtime.bundle)), runtime.ledger_dir, campaign(context)
    )
    mods = [] if privacy is None else privacy.mods()
    return make_ffn(call_next, mods)(msg, context)


app = ClientApp(client_fn=client_fn, mods=[contract_secagg_mod, contract_privacy_mod])
