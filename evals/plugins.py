"""Tasks from outside this package: installed plugins (entry-point group `evals.tasks`) and a user's
own task modules loaded by path (`--task-module FILE` or $EVALS_TASK_MODULES)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from importlib import metadata
from pathlib import Path

from evals.errors import ConfigError

ENTRY_POINT_GROUP = "evals.tasks"
MODULES_VARIABLE = "EVALS_TASK_MODULES"  # os.pathsep-separated task module files


def load_entry_points() -> None:
    """Import every installed task plugin; an entry point naming a function is called too."""
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
            if callable(loaded):
                loaded()
        except Exception as error:  # a broken plugin is named, not a traceback
            raise ConfigError(f"task plugin '{entry.name}' ({entry.value}) failed to load: "
                              f"{error.__class__.__name__}: {error}") from None


def load_task_module(path: str | Path) -> None:
    """Import a task module file once (its import registers its tasks)."""
    path = Path(path).resolve()
    name = f"evals_task_module_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return
    if not path.is_file():
        raise ConfigError(f"{path}: task module not found")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise ConfigError(f"{path}: task module failed to load: {error.__class__.__name__}: {error}") from None


def load_environment_modules() -> None:
    for entry in os.environ.get(MODULES_VARIABLE, "").split(os.pathsep):
        if entry.strip():
            load_task_module(entry.strip())
