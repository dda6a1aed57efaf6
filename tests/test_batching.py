"""Length-bucketed batches and the automatic batch size: neither changes a prediction, and out-of-memory
errors shrink the batch instead of ending the run."""

from __future__ import annotations

import json

import pytest

from evals.execution import AUTO_BATCH_START, BatchSize, Unit, by_length, prompt_length
from evals.models import ScriptedModel
from evals.records import ImageRef, ImageSegment, Prompt, TextSegment
from evals.runner import RunSettings, run


def unit(query_id: str, text: str, images: int = 0, candidates: tuple[str, ...] = ()) -> Unit:
    segments = tuple(ImageSegment(ImageRef(f"img{n}", "demo")) for n in range(images)) + (TextSegment(text),)
    return Unit(query_id, 0, (), Prompt(segments), candidates)


def test_units_are_ordered_longest_first_ties_by_key_whatever_their_order():
    units = [unit("a", "xx"), unit("b", "xxxxx"), unit("c", "x", images=1), unit("d", "xx"), unit("e", "x", candidates=("yyy",))]
    assert [prompt_length(u) for u in units] == [2, 5, 1 + 7 + 64, 2, 4]  # an image: its 7-character marker and 64
    assert [u.query_id for u in by_length(units)] == ["c", "b", "e", "a", "d"]
    assert by_length(units[::-1]) == by_length(units)


def records(output) -> dict:
    rows = {}
    for path in sorted(output.rglob("*.samples.jsonl")):
        for row in map(json.loads, path.read_text().splitlines()):
            rows[(str(path.relative_to(output)), row["id"])] = row
    return rows


def without_logliks(rows: dict) -> tuple[dict, list[float]]:
    """Records with ranked tasks' candidate log-likelihoods taken out (returned flat): padding a batch moves them
    in the last float digits, so they are compared within a tolerance; everything else must be identical."""
    kept, logliks = {}, []
    for key, row in rows.items():
        if isinstance(row["output"], list):
            logliks += [value for view in row["output"] for value in view]
            row = {**row, "output": None}
        kept[key] = row
    return kept, logliks


def test_bucketed_batches_of_1_3_and_8_give_identical_records(tmp_path, tiny_idefics):
    found = {}
    for size in (1, 3, 8):
        settings = RunSettings(shots=(0, 2), limit=7, batch_size=size, length_buckets=True, output_dir=tmp_path / str(size))
        results = run(tiny_idefics, ["demo_vqa", "demo_classify"], settings)
        found[size] = (*without_logliks(records(tmp_path / str(size))), [r.scores for r in results])
    rows, logliks, scores = found[1]
    assert len(rows) == 28 and len(logliks) == 14 * 8  # demo_classify: 8 class names per query
    for size in (3, 8):
        assert found[size][0] == rows and found[size][2] == scores  # predictions, texts, per-sample and cell scores
        assert found[size][1] == pytest.approx(logliks, abs=1e-4)


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which the batch size recognises by its name."""


class SmallMemoryModel(ScriptedModel):
    """Runs out of memory on any call of more than `fits` prompts, as a GPU would."""

    def __init__(self, fits: int, error: type[Exception] = OutOfMemoryError) -> None:
        super().__init__(answers=lambda p: p.text[-9:])
        self.fits, self.error, self.tried = fits, error, []

    def generate(self, prompts, params):
        self.tried.append(len(prompts))
        if len(prompts) > self.fits:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().generate(prompts, params)


def test_auto_batch_size_halves_on_out_of_memory_and_keeps_what_worked(tmp_path):
    model = SmallMemoryModel(fits=20)
    (result,) = run(model, ["demo_vqa"], RunSettings(shots=(2,), limit=100, batch_size="auto", output_dir=tmp_path / "auto"))
    assert model.tried[:3] == [AUTO_BATCH_START, 32, 16]  # 64 and 32 fail; 16 fits and is kept
    assert model.batch_sizes == [16, 16, 16, 16, 16, 16, 4]  # batches of 64 and 36 (boundaries every 64), in pieces of 16
    assert result.timing["batch_size"] == 16
    (reference,) = run(ScriptedModel(answers=lambda p: p.text[-9:]), ["demo_vqa"],
                       RunSettings(shots=(2,), limit=100, batch_size=1, output_dir=tmp_path / "one"))
    assert result.scores == reference.scores
    assert records(tmp_path / "auto") == records(tmp_path / "one")


def test_out_of_memory_at_one_prompt_or_with_a_fixed_size_still_fails(tmp_path):
    with pytest.raises(OutOfMemoryError):
        run(SmallMemoryModel(fits=0), ["demo_vqa"], RunSettings(shots=(2,), limit=3, batch_size="auto", output_dir=tmp_path))
    with pytest.raises(OutOfMemoryError):
        run(SmallMemoryModel(fits=2), ["demo_vqa"], RunSettings(shots=(2,), limit=3, batch_size=3, output_dir=tmp_path))


def test_a_plain_runtime_error_saying_out_of_memory_also_backs_off():
    model = SmallMemoryModel(fits=5, error=RuntimeError)
    sizer = BatchSize("auto")
    outputs = sizer.send(lambda piece: model.generate([u.prompt for u in piece], None), [unit(str(n), "q") for n in range(12)])
    assert len(outputs) == 12 and sizer.size == 4 and model.batch_sizes == [4, 4, 4]
    with pytest.raises(RuntimeError, match="boom"):
        BatchSize("auto").send(lambda piece: (_ for _ in ()).throw(RuntimeError("boom")), [unit("a", "q")])
