"""The last line of defence: an unexpected exception (a bug, not bad input) becomes one line on stderr, a crash log
with the full traceback, and exit status 3 (1: the gate failed, 2: bad input). EVALS_DEBUG=1 prints the traceback.

The line says what failed and with which torch and transformers, since most crashes in a harness like this one
come from a version of those it was not tried with; the log is in the run's output folder when the command has one
(`logs_into`), else a temporary file.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import metadata
from pathlib import Path

CRASH_STATUS = 3
FOLDER_ATTRIBUTE = "evals_crash_log_folder"  # set on an exception on its way out of `logs_into`
REPORTED_PACKAGES = ("torch", "transformers")


@contextmanager
def logs_into(folder: Path) -> Iterator[None]:
    """An unexpected exception raised inside is logged into `folder` (the command's output folder), the innermost
    such folder winning. The folder travels on the exception, so nothing global outlives the command."""
    try:
        yield
    except Exception as error:
        if not hasattr(error, FOLDER_ATTRIBUTE):
            setattr(error, FOLDER_ATTRIBUTE, Path(folder))
        raise


def package_version(name: str) -> str:
    """A package's installed version, read from its metadata: no import (torch may be what is broken)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def what_failed(error: BaseException) -> str:
    """`Type: first line of the message` (a message can hold a whole tensor dump)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def crash_line(error: BaseException, log: Path, versions: dict[str, str]) -> str:
    installed = ", ".join(f"{name} {version}" for name, version in versions.items())
    return f"internal error: {what_failed(error)} ({installed}); full traceback in {log}"


def command_line() -> str:
    """The command as the user typed it (`python -m evals` gives the path of __main__.py as argv[0])."""
    return " ".join(["evals", *sys.argv[1:]])


def log_text(error: BaseException, versions: dict[str, str], now: datetime) -> str:
    """The crash log: when, the command line, the versions, then the traceback (what a bug report needs)."""
    header = [f"evals crashed at {now:%Y-%m-%d %H:%M:%S}", f"command: {command_line()}",
              f"python {platform.python_version()}, " + ", ".join(f"{n} {v}" for n, v in versions.items()), ""]
    return "\n".join(header) + "".join(traceback.format_exception(error))


def log_name(now: datetime, rank: str) -> str:
    return f"crash-{now:%Y%m%d-%H%M%S}" + (f"-rank{rank}" if rank != "0" else "") + ".log"


def write_log(text: str, folder: Path | None, name: str) -> Path:
    """`folder/name`, or a temporary file when there is no folder or it cannot be written."""
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
            return folder / name
        except OSError:
            pass
    handle, path = tempfile.mkstemp(prefix="evals-" + name.removesuffix(".log") + "-", suffix=".log")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(text)
    return Path(path)


def this_rank() -> str:
    """This process's rank under torchrun or accelerate launch ("0" when alone), read leniently: a crash report
    must not fail on a malformed environment."""
    return os.environ.get("RANK", "").strip() or "0"


def report(error: BaseException) -> int:
    """Log `error` and say so in one line on stderr (only rank 0 of a data-parallel run speaks, so a bug that hits
    every rank is one line, not one a process); return the exit status."""
    if os.environ.get("EVALS_DEBUG", "") not in ("", "0"):
        traceback.print_exception(error, file=sys.stderr)
        return CRASH_STATUS
    versions = {name: package_version(name) for name in REPORTED_PACKAGES}
    now, rank = datetime.now(), this_rank()
    log = write_log(log_text(error, versions, now), getattr(error, FOLDER_ATTRIBUTE, None), log_name(now, rank))
    if rank == "0":
        sys.stderr.write(crash_line(error, log, versions) + "\n")
        sys.stderr.flush()
    return CRASH_STATUS
