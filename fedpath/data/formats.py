"""The log formats fedpath reads, each described as data rather than as a parser.

Every built-in format is a :class:`ColumnMapping` (how its columns become canonical events) plus
what detection needs (its columns, and a file-name pattern when it has no header). A partner's own
export is one more mapping, not one more parser.

Decisions on source actions the canonical schema has no place for:

- REES46 ``remove_from_cart`` is quarantined with reason "unsupported action": taking an item out
  of the cart is not a step forward on the path, and calling it a VIEW or a CART would invent one.
- Taobao ``fav`` (add to favourites) is a VIEW: the shopper was on the item's page when saving it,
  so the item belongs to the path, but a favourite is neither a cart step nor a purchase.

An empty field, or a null token (``null_values``), means "unknown" in every column but
``item_id`` and ``timestamp``, which every event needs. An event also needs a path to belong
to: a session id or, failing that, a user id (logs without sessions are sessionized per user).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from fedpath.errors import ConfigError
from fedpath.schema import EVENT_COLUMNS, SPLIT_COLUMN, Action

TIMESTAMP_UNITS: dict[str, tuple[int, int]] = {  # unit -> (multiplier, divisor) to milliseconds
    "s": (1000, 1),
    "ms": (1, 1),
    "us": (1, 1000),
    "ns": (1, 1_000_000),
}
AUTO_UNIT = "auto"  # integers are unix seconds or milliseconds, told apart by size; text is ISO
ORDER_UNIT = "order"  # the log has no clock: the column only orders the events of a session
_UNITS = (*TIMESTAMP_UNITS, AUTO_UNIT, ORDER_UNIT)
_FORBIDDEN_DELIMITERS = '"\r\n'


@dataclass(frozen=True)
class ColumnMapping:
    """How the columns of one source table read as canonical events.

    ``columns`` maps canonical column (or ``split``, for a pre-split log) -> source column.
    Timestamps are integers in ``timestamp_unit`` unless ``timestamp_format`` (a strptime format,
    or ``"ISO8601"``) says they are text. Unit ``auto`` reads seconds or milliseconds, whichever
    is a time from 1995 to 2100 (their ranges do not overlap), and ISO 8601 text; ``order`` reads
    a position, for a log without a clock. ``action_values`` maps source values to actions; a
    value mapped to ``None`` is known but unsupported (quarantined as such, not as unknown).
    Without an ``action`` column every row is ``default_action``. ``header`` names the columns
    of a file that has no header row.
    """

    columns: Mapping[str, str]
    timestamp_unit: str = "ms"
    timestamp_format: str | None = None
    action_values: Mapping[str, Action | None] | None = None
    default_action: Action = Action.VIEW
    delimiter: str = ","
    header: tuple[str, ...] | None = None
    null_values: frozenset[str] = frozenset()  # tokens meaning "unknown", besides an empty field
    time_offset: str | None = None  # source column of a millisecond offset added to the timestamp
    category_separator: str | None = None  # keep the category text before this separator

    def __post_init__(self) -> None:
        # Own copies: a caller changing its dict later must not change a mapping already in use.
        object.__setattr__(self, "columns", dict(self.columns))
        if self.action_values is not None:
            object.__setattr__(self, "action_values", dict(self.action_values))
        if self.header is not None:
            object.__setattr__(self, "header", tuple(self.header))
        object.__setattr__(self, "null_values", frozenset(self.null_values))
        self._validate()

    def _validate(self) -> None:
        unknown = sorted(set(self.columns) - {*EVENT_COLUMNS, SPLIT_COLUMN})
        if unknown:
            raise ConfigError(
                f"mapping keys must be canonical columns {EVENT_COLUMNS} or {SPLIT_COLUMN!r}, "
                f"got {unknown}"
            )
        for required in ("item_id", "timestamp"):
            if required not in self.columns:
                raise ConfigError(f"mapping must map {required!r}, got {dict(self.columns)}")
        if "session_id" not in self.columns and "user_id" not in self.columns:
            raise ConfigError(f"mapping must map session_id or user_id, got {dict(self.columns)}")
        if ("action" in self.columns) != (self.action_values is not None):
            raise ConfigError(
                "action_values must be given exactly when an 'action' column is mapped, "
                f"got columns {dict(self.columns)} and action_values {self.action_values}"
            )
        if self.timestamp_unit not in _UNITS:
            units = sorted(_UNITS)
            raise ConfigError(f"timestamp_unit must be one of {units}, got {self.timestamp_unit!r}")
        if len(self.delimiter) != 1 or self.delimiter in _FORBIDDEN_DELIMITERS:
            raise ConfigError(
                f"delimiter must be one character, not a quote or newline, got {self.delimiter!r}"
            )
        if self.header is not None:
            missing = [c for c in self.source_columns if c not in self.header]
            if missing:
                raise ConfigError(f"header must name every mapped column, missing {missing}")

    @property
    def source_columns(self) -> tuple[str, ...]:
        """The source columns a load reads, each once."""
        extra = (self.time_offset,) if self.time_offset else ()
        return tuple(dict.fromkeys((*self.columns.values(), *extra)))

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ColumnMapping:
        """Build a mapping from plain config values (action names as text, lists for tuples)."""
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ConfigError(f"mapping keys must be among {sorted(allowed)}, got {unknown}")
        values = dict(config)
        if values.get("action_values") is not None:
            values["action_values"] = {
                str(k): None if v is None else _action(v)
                for k, v in values["action_values"].items()
            }
        if "default_action" in values:
            values["default_action"] = _action(values["default_action"])
        if values.get("header") is not None:
            values["header"] = tuple(values["header"])
        if "null_values" in values:
            values["null_values"] = frozenset(values["null_values"])
        return cls(**values)


def _action(name: str | int | Action) -> Action:
    if isinstance(name, int):
        return Action(name)
    try:
        return Action[str(name).upper()]
    except KeyError:
        choices = [a.name.lower() for a in Action if a is not Action.EXIT]
        raise ConfigError(f"action must be one of {choices}, got {name!r}") from None


class Sibling(NamedTuple):
    """A companion file loaded with the main one: same folder, ``old`` -> ``new`` in its name."""

    fmt: str
    old: str
    new: str


@dataclass(frozen=True)
class LogFormat:
    """A named source format: its columns, how they map, and how to recognise its files."""

    name: str
    columns: tuple[str, ...]  # the full documented header (or column list, when headerless)
    mapping: ColumnMapping
    file_pattern: str | None = None  # fnmatch pattern of file names, for headerless formats
    sibling: Sibling | None = None

    @property
    def has_header(self) -> bool:
        return self.mapping.header is None


_V, _C, _P = Action.VIEW, Action.CART, Action.PURCHASE
_TAOBAO = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
_CLICKS = ("session_id", "timestamp", "item_id", "category")
_BUYS = ("session_id", "timestamp", "item_id", "price", "quantity")
_REES46 = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)

FORMATS: dict[str, LogFormat] = {
    f.name: f
    for f in (
        LogFormat(
            name="diginetica",
            columns=("session_id", "user_id", "item_id", "timeframe", "eventdate"),
            mapping=ColumnMapping(
                columns={
                    "session_id": "session_id",
                    "user_id": "user_id",
                    "item_id": "item_id",
                    "timestamp": "eventdate",
                },
                timestamp_format="%Y-%m-%d",
                time_offset="timeframe",
                delimiter=";",
                null_values=frozenset({"NA"}),
            ),
        ),
        LogFormat(
            name="yoochoose",
            columns=_CLICKS,
            mapping=ColumnMapping(
                columns={
                    "session_id": "session_id",
                    "timestamp": "timestamp",
                    "item_id": "item_id",
                    "category": "category",
                },
                timestamp_format="ISO8601",
                header=_CLICKS,
                null_values=frozenset({"0"}),  # category 0: unknown
            ),
            file_pattern="*clicks*.dat",
            sibling=Sibling("yoochoose-buys", "clicks", "buys"),
        ),
        LogFormat(
            name="yoochoose-buys",
            columns=_BUYS,
            mapping=ColumnMapping(
                columns={
                    "session_id": "session_id",
                    "timestamp": "timestamp",
                    "item_id": "item_id",
                    "price": "price",
                },
                timestamp_format="ISO8601",
                default_action=_P,
                header=_BUYS,
            ),
            file_pattern="*buys*.dat",
        ),
        LogFormat(
            name="retailrocket",
            columns=("timestamp", "visitorid", "event", "itemid", "transactionid"),
            mapping=ColumnMapping(
                columns={
                    "timestamp": "timestamp",
                    "user_id": "visitorid",
                    "action": "event",
                    "item_id": "itemid",
                },
                action_values={"view": _V, "addtocart": _C, "transaction": _P},
            ),
        ),
        LogFormat(
            name="rees46",
            columns=_REES46,
            mapping=ColumnMapping(
                columns={
                    "timestamp": "event_time",
                    "action": "event_type",
                    "item_id": "product_id",
                    "category": "category_code",
                    "price": "price",
                    "user_id": "user_id",
                    "session_id": "user_session",
                },
                timestamp_format="%Y-%m-%d %H:%M:%S UTC",
                action_values={"view": _V, "cart": _C, "purchase": _P, "remove_from_cart": None},
                category_separator=".",
            ),
        ),
        LogFormat(
            name="taobao",
            columns=_TAOBAO,
            mapping=ColumnMapping(
                columns={
                    "user_id": "user_id",
                    "item_id": "item_id",
                    "category": "category_id",
                    "action": "behavior_type",
                    "timestamp": "timestamp",
                },
                timestamp_unit="s",
                action_values={"pv": _V, "fav": _V, "cart": _C, "buy": _P},
                header=_TAOBAO,
            ),
            file_pattern="UserBehavior*.csv",
        ),
        LogFormat(
            # A published benchmark split (Diginetica as SR-GNN prepared it): its split column is
            # the protocol, and position orders a session's views (the file has no times).
            name="presplit",
            columns=(SPLIT_COLUMN, "session_id", "position", "item_id"),
            mapping=ColumnMapping(
                columns={
                    SPLIT_COLUMN: SPLIT_COLUMN,
                    "session_id": "session_id",
                    "timestamp": "position",
                    "item_id": "item_id",
                },
                timestamp_unit=ORDER_UNIT,
            ),
        ),
        LogFormat(
            name="fedpath",
            columns=EVENT_COLUMNS,
            mapping=ColumnMapping(
                columns={c: c for c in EVENT_COLUMNS},
                action_values={
                    **{str(int(a)): a for a in (_V, _C, _P)},
                    **{a.name.lower(): a for a in (_V, _C, _P)},
                },
            ),
        ),
    )
}


def get_format(name: str) -> LogFormat:
    """The built-in format called ``name``."""
    if name not in FORMATS:
        raise ConfigError(f"fmt must be one of {sorted(FORMATS)}, got {name!r}")
    return FORMATS[name]


def generic_format(mapping: ColumnMapping) -> LogFormat:
    """A format made from a caller's mapping: it expects exactly the columns the mapping reads."""
    return LogFormat(
        name="generic", columns=mapping.header or mapping.source_columns, mapping=mapping
    )
