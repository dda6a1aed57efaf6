"""The declared dependency range is the one CI proves: pyproject's lower bounds are what constraints/minimum.txt pins
(.ci/run's second pass), and the lock file pins every declared dependency."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


def pins(path: Path) -> dict[str, Version]:
    """name -> version of every `name==version` line (comments and blank lines skipped)."""
    pinned = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{path.name}: {line!r} is not an exact pin"
            pinned[canonicalize_name(requirement.name)] = Version(spec.version)
    return pinned


def lower_bound(requirement: Requirement) -> Version:
    (bound,) = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return bound


def test_minimum_constraints_pin_the_declared_lower_bounds():
    requirements, minimum = declared(), pins(ROOT / "constraints" / "minimum.txt")
    moving = {"torch", "transformers", "tokenizers", "safetensors", "accelerate", "datasets", "faiss-cpu", "pycocoevalcap"}
    assert moving <= set(minimum), f"constraints/minimum.txt lacks {sorted(moving - set(minimum))}"
    for name, version in minimum.items():
        assert name in requirements, f"constraints/minimum.txt pins {name}, which pyproject does not declare"
        assert lower_bound(requirements[name]) == version, f"{name}: pyproject says {requirements[name]}, CI tests {version}"


def test_lock_pins_every_declared_dependency_within_its_range():
    requirements, lock = declared(), pins(ROOT / "constraints" / "lock.txt")
    for name, requirement in requirements.items():
        assert name in lock, f"constraints/lock.txt does not pin {name}"
        version = Version(str(lock[name]).split("+")[0])
        assert requirement.specifier.contains(version, prereleases=True), f"lock pins {name} {version} outside {requirement}"
