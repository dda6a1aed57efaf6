"""Ending a finished command's process: flush its output and skip interpreter teardown where teardown is only cost
(freeing millions of parsed objects one by one) or risk (gloo's threads aborting a finished data-parallel rank)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def is_entry_point(main: Callable[[], None]) -> bool:
    """Whether the process was started to run `main` and ends with it: `python -m evals` (evals/__main__.py) or the
    installed `evals` script, files whose code imports `main` and calls it last. Not a caller that goes on after
    `main` returns: pytest, or `python -c` code that imports main (no __file__)."""
    script = sys.modules.get("__main__")
    return getattr(script, "main", None) is main and getattr(script, "__file__", None) is not None


def exit_without_teardown() -> None:
    """End the process with status 0 once stdout and stderr are flushed, skipping the interpreter's teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
