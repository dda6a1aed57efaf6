"""Output paths checked before the work starts, and written so that a failed write never loses a computed result."""

from __future__ import annotations

import os
from pathlib import Path

from evals.errors import ConfigError, DataError


def check_writable_file(path: Path, option: str) -> None:
    """Refuse, before any work, an output file that is a folder, a read-only file, or that cannot be created
    (its folder is a file, or not writable): the user learns it in a second, not after the run."""
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder, not a file")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{option} {path}: the file is not writable")
        return
    check_creatable(path, option)


def check_writable_dir(path: Path, option: str) -> None:
    """Refuse, before any work, an output folder that is a file, is not writable, or cannot be created."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is a file, not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{option} {path}: the folder is not writable")
        return
    check_creatable(path, option)


def check_creatable(path: Path, option: str) -> None:
    """`path` does not exist: its nearest existing folder must be a folder we may create entries in."""
    ancestor = nearest_existing(path)
    if not ancestor.is_dir():
        raise ConfigError(f"{option} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: cannot create it, {ancestor} is not writable")


def nearest_existing(path: Path) -> Path:
    """The closest of `path`'s parents that exists (a broken link counts as existing: it cannot be created over)."""
    for parent in Path(os.path.abspath(path)).parents:
        if parent.exists() or parent.is_symlink():
            return parent
    return Path(os.sep)


def write_output(path: Path, text: str, option: str) -> None:
    """Write `text` to `path`; a failure (full disk, a folder made read-only meanwhile) is one line naming the option."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise DataError(f"{option} {path}: cannot write ({error.strerror or error})") from None
