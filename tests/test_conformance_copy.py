"""The in-repo conformance vectors (tests/data/conformance) are a byte-identical copy of ../shared/conformance."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE, SHARED_CONFORMANCE


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.skipif(not SHARED_CONFORMANCE.is_dir(), reason="../shared/conformance not beside the repository")
def test_copy_equals_shared_conformance():
    shared, copy = files_under(SHARED_CONFORMANCE), files_under(CONFORMANCE)
    assert copy == shared, f"only in the copy: {sorted(copy - shared)}; only in ../shared: {sorted(shared - copy)}"
    differing = [name for name in sorted(shared) if (CONFORMANCE / name).read_bytes() != (SHARED_CONFORMANCE / name).read_bytes()]
    assert not differing, f"differ from ../shared/conformance: {differing}"


def test_copy_holds_every_family():
    # Guards the copy itself where ../shared is absent: an emptied folder would otherwise pass unnoticed.
    assert {"README.md", "captioning/expected.json", "ranking/roc_auc.json", "vqa_accuracy/expected.json"} <= files_under(CONFORMANCE)
