"""One generic name registry for tasks, models, selectors, prompt formats and embedders, with did-you-mean."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from evals.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind; an unknown name fails with the closest known names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`, for factories and classes."""
        return lambda entry: self.add(name, entry)

    def get(self, name: str) -> T:
        load_plugins()
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} '{name}'{hint} (known: {', '.join(self.names())})"

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        load_plugins()
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries


TASKS: Registry = Registry("task")
MODELS: Registry = Registry("model")
SELECTORS: Registry = Registry("selector")
PROMPT_FORMATS: Registry = Registry("prompt format")
EMBEDDERS: Registry = Registry("embedder")


def suite_tasks(suite: str) -> list[str]:
    """The registered tasks that belong to `suite` (e.g. "demo", what `evals run` runs by default), in registry order."""
    return [name for name, task in TASKS.items() if suite in task.suites]

_loaded = False


def load_plugins() -> None:
    """Import the modules whose import registers the built-in entries (cheap: no torch), then the
    installed task plugins and the task modules named in $EVALS_TASK_MODULES."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import evals.embedders  # noqa: F401
    import evals.models  # noqa: F401
    import evals.rices  # noqa: F401
    import evals.selection  # noqa: F401
    import prompts  # noqa: F401
    import tasks  # noqa: F401
    from evals.plugins import load_entry_points, load_environment_modules

    load_entry_points()
    load_environment_modules()
