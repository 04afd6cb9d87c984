"""The project's own exceptions: one base so callers can catch fedpath faults apart from bugs."""

from __future__ import annotations


class FedpathError(Exception):
    """Base of every error fedpath raises on purpose."""


class DataFormatError(FedpathError, ValueError):
    """A log file fedpath cannot read; the message names the file and what was expected."""


class ConfigError(FedpathError, ValueError):
    """A configuration value outside its allowed set; the message names key, value and rule."""


def require(ok: bool, key: str, rule: str, value: object) -> None:
    """The one boundary check: ``ConfigError("<key> must be <rule>, got <value>")`` unless ``ok``.

    Every setting (model hyper-parameters, privacy, accounting) is refused with the same sentence
    and the same type, so a caller catches one error and a user reads one shape of message.
    """
    if not ok:
        raise ConfigError(f"{key} must be {rule}, got {value!r}")
