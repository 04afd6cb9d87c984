"""The types of Flower's ``Strategy.aggregate_*`` calls, named once.

Every fedpath strategy that overrides one of them (the wrappers, the secure sum) must restate
Flower's signature; spelled out, each is six lines of nested generics that hide the one line
that differs.
"""

from __future__ import annotations

from flwr.common import EvaluateRes, FitRes, Parameters, Scalar
from flwr.server.client_proxy import ClientProxy

FitResults = list[tuple[ClientProxy, FitRes]]
FitFailures = list[tuple[ClientProxy, FitRes] | BaseException]
FitAggregate = tuple[Parameters | None, dict[str, Scalar]]
EvaluateResults = list[tuple[ClientProxy, EvaluateRes]]
EvaluateFailures = list[tuple[ClientProxy, EvaluateRes] | BaseException]
EvaluateAggregate = tuple[float | None, dict[str, Scalar]]
