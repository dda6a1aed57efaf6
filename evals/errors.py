"""User-facing errors: each is one line naming the file, field or name at fault (the CLI prints it, exit 2)."""

from __future__ import annotations


class EvalsError(Exception):
    """A problem with the user's input or environment, reported as one clear line, never a traceback."""


class DataError(EvalsError):
    """A data file is missing, unreadable, malformed, or lacks a field."""


class UnknownNameError(EvalsError):
    """A task, model, selector or prompt format name that is not registered."""


class ConfigError(EvalsError):
    """An impossible or contradictory run setting (for example more shots than the support set holds)."""


class IntegrityWarning(UserWarning):
    """A stored intermediate (a journal entry, a cached feature file) failed its check and is being recomputed; the
    cell's record counts these (`integrity`), and `evals run` shows them on stderr as well as in its log."""
