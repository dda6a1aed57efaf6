"""Benchmarks as registered declarations; importing this package registers the built-in tasks.

Every module of this package except the shared parts (base, hf) is a task family whose import
registers its benchmarks, so a new family is a new file.
"""

import importlib
import pkgutil

SHARED_MODULES = {"base", "hf"}

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in SHARED_MODULES:
        importlib.import_module(f"tasks.{_module}")
