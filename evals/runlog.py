"""Where library noise goes during `evals run`: Python warnings (deprecations from transformers, torch, ...) and the
transformers and huggingface_hub loggers' messages are appended to OUTPUT_DIR/evals.log, and shown on stderr only
with --verbose. The terminal keeps what the harness itself says: progress, notes, the results table, errors, and the
integrity warnings (a journal entry or cached feature file that failed its check and is recomputed): those change
what a run does, so they are shown on stderr as one line too, not only logged.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

from evals.crash import command_line
from evals.errors import ConfigError, IntegrityWarning

LOG_NAME = "evals.log"
# Python's warnings (logging.captureWarnings), and the libraries that log warnings of their own.
ROUTED_LOGGERS = ("py.warnings", "transformers", "huggingface_hub")
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STDERR_FORMAT = "%(levelname)s %(name)s: %(message)s"


def log_path(folder: Path, rank: int = 0) -> Path:
    """One log per process: data-parallel ranks other than 0 write their own file beside it."""
    return Path(folder) / (LOG_NAME if rank == 0 else f"evals-rank{rank}.log")


def open_log(path: Path) -> logging.Handler:
    """A handler appending to `path`, after a line that starts this run's part of the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as file:
            file.write(f"---- {datetime.now():%Y-%m-%d %H:%M:%S} {command_line()}\n")
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot write the run's log ({error.strerror or error})") from None
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    return handler


def stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(STDERR_FORMAT))
    return handler


def configure_transformers_now() -> None:
    """transformers adds its own stderr handler when its logging module is first imported; import it now (when
    installed), so that the handler exists before `route` replaces it rather than arriving mid-run."""
    if importlib.util.find_spec("transformers") is not None:
        import transformers.utils.logging  # noqa: F401


@contextmanager
def route(name: str, handlers: list[logging.Handler]) -> Iterator[None]:
    """Logger `name` writes its warnings and errors through `handlers` alone (not its own, not the root's) while inside,
    whatever level a library set it to before (transformers' `set_verbosity_error` would drop its warnings)."""
    logger = logging.getLogger(name)
    saved = logger.handlers[:], logger.propagate, logger.level
    logger.handlers, logger.propagate = list(handlers), False
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved[:2]
        logger.setLevel(saved[2])


@contextmanager
def warnings_logged() -> Iterator[None]:
    """Warnings go to the `py.warnings` logger, each shown once per place that raises it; DeprecationWarning too,
    which Python's default filters hide outside __main__: the log is where a coming break is seen first."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        before = warnings.showwarning
        logging.captureWarnings(True)
        captured_show = warnings.showwarning
        if captured_show is not before:
            warnings.showwarning = integrity_on_stderr(captured_show)
        try:
            yield
        finally:
            if captured_show is not before:  # undo only a capture this call started
                warnings.showwarning = captured_show
                logging.captureWarnings(False)


def integrity_on_stderr(show):
    """`show` (the log's), after printing an IntegrityWarning as one `warning:` line on stderr."""
    def shown(message, category, *args, **kwargs):
        if issubclass(category, IntegrityWarning):
            print(f"warning: {message}", file=sys.stderr)
        show(message, category, *args, **kwargs)
    return shown


@contextmanager
def captured(folder: Path, verbose: bool = False, rank: int = 0) -> Iterator[Path]:
    """Inside, warnings and library log messages go to the run's log in `folder` (and to stderr with `verbose`)."""
    configure_transformers_now()
    path = log_path(folder, rank)
    handler = open_log(path)
    handlers = [handler, stderr_handler()] if verbose else [handler]
    with ExitStack() as stack:
        stack.callback(handler.close)
        stack.enter_context(warnings_logged())
        for name in ROUTED_LOGGERS:
            stack.enter_context(route(name, handlers))
        yield path
