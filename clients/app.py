"""The Flower ``ClientApp`` every partner runs; SecAgg+ is a mod on it when secagg is on."""

from __future__ import annotations

from collections.abc import Callable

from flwr.client import Client, ClientApp
from flwr.client.mod import secaggplus_mod
from flwr.common import Context

from fedpath.clients.client import ClientSettings, PartnerClient
from fedpath.clients.store import load_partner
from fedpath.federation.keys import PARTITION_ID
from fedpath.quiet import quiet_known_noise


def make_client_fn(settings: ClientSettings) -> Callable[[Context], Client]:
    """Flower's ``client_fn``: the node's ``partition-id`` says which partner's cases to load."""

    def client_fn(context: Context) -> Client:
        quiet_known_noise()  # in the Ray actor that runs this partner
        partner = int(context.node_config[PARTITION_ID])
        if not settings.model.is_count:
            import torch  # only neural partners pay for torch, and they share the CPU budget

            torch.set_num_threads(settings.threads)
        cases = load_partner(settings.data_dir, partner)
        return PartnerClient(partner, cases, settings).to_client()

    return client_fn


def build_client_app(settings: ClientSettings, *, secagg: bool) -> ClientApp:
    """The partners' app; ``secaggplus_mod`` masks each update before it leaves the partner."""
    mods = [secaggplus_mod] if secagg else []
    if settings.privacy is not None:
        mods += settings.privacy.mods()  # inside SecAgg+: clipped and noised before masking
    return ClientApp(client_fn=make_client_fn(settings), mods=mods)
