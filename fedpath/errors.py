"""The project's own exceptions: one base so callers can catch fedpath faults apart from bugs."""

from __future__ import annotations


class FedpathError(Exception):
    """Base of every error fedpath raises on purpose."""


class DataFormatError(FedpathError, ValueError):
    """A log file fedpath cannot read; the message names the file and what was expected."""


class ConfigError(FedpathError, ValueError):
    """A configuration value outside its allowed set; the message names key, value and rule."""
