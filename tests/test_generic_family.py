"""The generic family: tiny random Gemma 3 and LLaVA-NeXT checkpoints built from config (no download) load by folder,
render the `chat` format through their own chat templates, score candidates exactly (prefix reuse as the naive path),
count their image tokens and run `evals run` at 0 and 4 shots, batch size 1 and 4 alike."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.errors import ConfigError
from evals.models import generic, resolve_model
from evals.models.families import family_for_model_type
from evals.records import Example, GenerationParams, ImageRef, Prompt, TextSegment
from evals.registry import PROMPT_FORMATS, suite_tasks
from prompts import render

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "250"}
ARCHITECTURES = ("gemma3", "llava_next")
CHAT = PROMPT_FORMATS.get("chat")


@pytest.fixture(scope="session")
def tiny_generic_folders(tmp_path_factory) -> dict[str, Path]:
    spec = importlib.util.spec_from_file_location("make_tiny_generic", REPO / "scripts" / "make_tiny_generic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session", params=ARCHITECTURES)
def tiny(request, tiny_generic_folders):
    return resolve_model(str(tiny_generic_folders[request.param]))


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> ImageRef:
    from PIL import Image

    path = tmp_path_factory.mktemp("images") / "wide.png"
    Image.new("RGB", (40, 20), (200, 30, 30)).save(path)
    return ImageRef("wide", path)


def vqa(n: int, question: str, image: ImageRef) -> Example:
    return Example(str(n), (image,), {"question": question}, ("x",))


def two_shot_prompt(image: ImageRef, text_only_shots: bool = False) -> Prompt:
    shots = [(vqa(1, "What color is the bus?", image), "red"), (vqa(2, "How many dogs?", image), "2")]
    return render(CHAT.template("vqa"), shots, vqa(3, "What is on the table?", image), text_only_shots)


def user(question: str, with_image: bool = True) -> dict:
    text = {"type": "text", "text": f"{question}\nGive a very brief answer."}
    return {"role": "user", "content": [{"type": "image"}, text] if with_image else [text]}


def assistant(answer: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": answer}]}


def test_folders_are_detected_as_generic_with_their_defaults_recorded(tiny):
    assert (tiny.info.family, tiny.info.prompt_format) == ("generic", "chat")
    assert tiny.options.recorded() == {"demonstrations": "turns", "scoring": "prefix"}


@pytest.mark.parametrize("text_only_shots", [False, True])
def test_shots_render_as_earlier_turns_of_the_chat_template(tiny, image, text_only_shots):
    messages = [user("What color is the bus?", not text_only_shots), assistant("red"),
                user("How many dogs?", not text_only_shots), assistant("2"), user("What is on the table?")]
    expected = tiny.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert tiny.chat_text(two_shot_prompt(image, text_only_shots)) == expected


def test_one_turn_layout_puts_every_shot_in_one_user_message(image):
    turns = generic.split_turns(two_shot_prompt(image))
    one = generic.messages(turns, "one_turn")
    assert [m["role"] for m in one] == ["user"]
    assert [item["type"] for item in one[0]["content"]] == ["image", "text", "image", "text", "image", "text"]
    assert one[0]["content"][1]["text"] == "What color is the bus?\nGive a very brief answer.\nred\n\n"


def test_gemma3_snapshot_of_a_two_shot_prompt(tiny_generic_folders, image):
    model = resolve_model(str(tiny_generic_folders["gemma3"]))
    assert model.chat_text(two_shot_prompt(image)) == (
        "<s><start_of_turn>user\n<start_of_image>What color is the bus?\nGive a very brief answer.<end_of_turn>\n"
        "<start_of_turn>model\nred<end_of_turn>\n<start_of_turn>user\n<start_of_image>How many dogs?\nGive a very brief "
        "answer.<end_of_turn>\n<start_of_turn>model\n2<end_of_turn>\n<start_of_turn>user\n<start_of_image>What is on "
        "the table?\nGive a very brief answer.<end_of_turn>\n<start_of_turn>model\n")


def test_end_of_turn_comes_from_the_template(tiny_generic_folders):
    gemma = resolve_model(str(tiny_generic_folders["gemma3"]))
    llava = resolve_model(str(tiny_generic_folders["llava_next"]))
    assert (gemma.reply_lead, gemma.closing) == ("", "<end_of_turn>\n")
    assert (llava.reply_lead, llava.closing) == (" ", "</s>")
    assert llava.reply("red<|end|>") == " red</s>" and llava.reply("red") == " red"


def test_a_prompt_in_another_format_is_refused(tiny):
    with pytest.raises(ConfigError, match="--prompt-format chat"):
        tiny.chat_text(Prompt((TextSegment("Question: why? Answer:"),)))


def test_image_tokens_are_what_one_image_adds(tiny, image):
    with_image = tiny.encode([two_shot_prompt(image)], [0], "")["input_ids"].shape[1]
    without = tiny.encode([two_shot_prompt(image, text_only_shots=True)], [0], "")["input_ids"].shape[1]
    if tiny.architecture.name == "Gemma 3":  # a fixed cost: exactly what each of the two shots' images added
        assert with_image - without == 2 * tiny.image_tokens() == 2 * 10  # 4 soft tokens, BOI, EOI, 2 x "\n\n"
    else:  # LLaVA-NeXT tiles by size: the 40 x 20 image costs less than the largest grid
        assert 0 < (with_image - without) / 2 < tiny.image_tokens()


def test_counted_prompt_lengths_are_the_encoded_ones_or_more(tiny, image):
    """What evals.context counts before any model call: exact for Gemma 3's fixed image cost, never less than the
    encoded length for LLaVA-NeXT (whose images are counted at their largest tiling)."""
    prompts = mixed_prompts(image)
    encoded = [int(tiny.encode([p], [0], "")["attention_mask"].sum()) for p in prompts]
    counted = tiny.prompt_lengths(prompts)
    if tiny.architecture.name == "Gemma 3":
        assert counted == encoded
    else:
        assert all(c >= e for c, e in zip(counted, encoded))


CANDIDATES = ("red<|end|>", "a blue car<|end|>", "2<|end|>", "yes")


def mixed_prompts(image: ImageRef) -> list[Prompt]:
    """Different lengths (left padding), zero and two shots with images, one text-only-shot prompt."""
    template = CHAT.template("vqa")
    return [two_shot_prompt(image), render(template, [], vqa(4, "Where?", image)), two_shot_prompt(image, True)]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_prefix_scores_equal_naive_scores(tiny, image, reduction):
    prompts = mixed_prompts(image)
    fast = tiny.score(prompts, [CANDIDATES] * 3, reduction)
    naive = tiny.score_naive(prompts, [CANDIDATES] * 3, reduction)
    assert max(abs(a - b) for x, y in zip(fast, naive) for a, b in zip(x, y)) < 1e-4
    assert len({round(s, 3) for s in fast[0]}) == len(CANDIDATES)


def test_naive_scoring_option_takes_the_naive_path(tiny_generic_folders, image, monkeypatch):
    from evals.models.options import ModelOptions

    model = generic.GenericModel.load(tiny_generic_folders["llava_next"], options=ModelOptions(scoring="naive"))
    assert model.options.recorded()["scoring"] == "naive"
    monkeypatch.setattr(generic.Idefics2Model, "score", lambda *a, **k: pytest.fail("prefix path taken"))
    assert len(model.score(mixed_prompts(image)[:1], [CANDIDATES])[0]) == len(CANDIDATES)


def test_generation_stops_at_the_end_of_turn(tiny, image):
    params = GenerationParams(max_new_tokens=6, num_beams=1, stop_sequences=CHAT.template("vqa").stop)
    outputs = tiny.generate(mixed_prompts(image), params)
    assert len(outputs) == 3 and all(isinstance(o, str) for o in outputs)
    assert not any(tiny.image_marker in o or "<|end|>" in o for o in outputs)


def test_torchvision_families_are_one_clear_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchvision" else object())
    with pytest.raises(ConfigError, match="need torchvision for their processor: pip install torchvision"):
        generic.architecture("qwen2_vl")
    assert generic.architecture("gemma3").name == "Gemma 3"


def test_family_claims_its_model_types_and_refuses_others():
    assert family_for_model_type("gemma3", "config.json").name == "generic"
    assert set(generic.ARCHITECTURES) == set(family_for_model_type("llava_next", "x").model_types)
    with pytest.raises(ConfigError, match="supported families: .*generic"):
        family_for_model_type("pixtral", "config.json")


def run_demo(model: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evals", "run", "--model", str(model), "--shots", "0,4", "--limit", "4",
                           "--output-dir", str(out), *extra], check=False, env=ENV, capture_output=True, text=True, timeout=600)


def predictions(out: Path) -> dict[str, list]:
    found = {}
    for path in sorted(out.rglob("*.samples.jsonl")):
        found[str(path.relative_to(out))] = [json.loads(line)["prediction"] for line in path.read_text().splitlines()]
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_evals_run_at_0_and_4_shots_batch_size_1_and_4_alike(tiny_generic_folders, tmp_path, name):
    runs = {}
    for batch in ("1", "4"):
        done = run_demo(tiny_generic_folders[name], tmp_path / batch, "--batch-size", batch)
        assert done.returncode == 0, done.stderr
        runs[batch] = predictions(tmp_path / batch)
    found = [json.loads(p.read_text())["protocol"] for p in sorted((tmp_path / "4").rglob("*.json"))]
    assert {p["task"] for p in found} == set(suite_tasks("demo")) and {p["shots"] for p in found} == {0, 4}
    assert all(p["model_family"] == "generic" and p["prompt_format"] == "chat" for p in found)
    assert all(p["model_args"] == {"demonstrations": "turns", "scoring": "prefix"} for p in found)
    assert runs["1"].keys() == runs["4"].keys() and len(runs["4"]) == len(found)
    assert all(alike(runs["1"][cell], runs["4"][cell]) for cell in runs["4"])


def alike(first, second) -> bool:
    """Equal predictions: the same text, labels and ranks; probabilities within float noise (padding changes the
    summation order of a batched forward)."""
    if isinstance(first, float) or isinstance(second, float):
        return abs(first - second) < 1e-5
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(alike(first[k], second[k]) for k in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(alike(a, b) for a, b in zip(first, second))
    return first == second
