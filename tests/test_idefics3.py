"""Idefics3 / SmolVLM: a tiny checkpoint built from Idefics3Config (no download) loads by folder, renders the chat
format as its processor's chat template does (text and token ids), splits images and counts what an image costs,
scores candidates exactly (the prefix-reusing `score` as `score_naive`), stops at stop strings and runs `evals run`
with the same predictions at batch sizes 1 and 4."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from evals.errors import ConfigError
from evals.models import resolve_model
from evals.models.idefics3 import Idefics3Model
from evals.models.options import ModelOptions
from evals.records import Example, GenerationParams, ImageRef, Prompt, TextSegment
from evals.registry import PROMPT_FORMATS
from prompts import render
from prompts.formats import merge_text
from tests.test_idefics2 import (
    MIXED_CANDIDATES,
    MIXED_PROMPTS,
    assert_prefix_scores_equal_naive_scores,
    assert_two_token_stop_ends_generation,
    chat_turn,
    demo_tasks,
    image,
    image_of,
    largest_gap,
    protocols,
    run_demo,
    text_part,
    vqa_example,
)

REPO = Path(__file__).resolve().parent.parent
_ = image  # a fixture, shared with the IDEFICS2 tests


def tiny_builder():
    spec = importlib.util.spec_from_file_location("make_tiny_idefics3", REPO / "scripts" / "make_tiny_idefics3.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = tiny_builder()


@pytest.fixture(scope="session")
def tiny_idefics3_folder(tmp_path_factory) -> Path:
    return TINY.build(tmp_path_factory.mktemp("models") / "tiny_idefics3")


@pytest.fixture(scope="session")
def tiny_idefics3(tiny_idefics3_folder) -> Idefics3Model:
    return resolve_model(str(tiny_idefics3_folder))


def test_folder_is_detected_as_idefics3_with_the_chat_format(tiny_idefics3):
    info = tiny_idefics3.info
    assert (info.family, info.prompt_format, info.dtype) == ("idefics3", "idefics3-chat", "float32")
    assert tiny_idefics3.options.recorded() == {"do_image_splitting": True, "longest_edge": TINY.LONGEST_EDGE}
    # the chat template opens with the BOS text, so the tokenizer adds none of its own (as apply_chat_template)
    assert (tiny_idefics3.opening, tiny_idefics3.add_special_tokens) == ("<s>", False)


def test_base_checkpoints_get_the_interleaved_format_without_the_opening(tiny_idefics3_folder):
    model = Idefics3Model.load(tiny_idefics3_folder, name="SmolVLM-256M-Base")
    assert (model.info.prompt_format, model.opening, model.add_special_tokens) == ("idefics3", "", True)


def test_formats_borrow_the_idefics2_templates_under_their_own_names():
    for mine, theirs in (("idefics3", "idefics2"), ("idefics3-chat", "idefics2-chat")):
        own, borrowed = PROMPT_FORMATS.get(mine), PROMPT_FORMATS.get(theirs)
        assert set(own.templates) == set(borrowed.templates)
        for key, template in own.templates.items():
            assert (template.example, template.stop, template.format) == (borrowed.template(key).example,
                                                                          borrowed.template(key).stop, mine)
            assert template.hash != borrowed.template(key).hash


def few_shot_messages(shots, query, with_shot_images: bool = True) -> list[dict]:
    def user(question, with_image):
        return chat_turn("user", ([{"type": "image"}] if with_image else []) +
                         [text_part(f"{question}\nGive a very brief answer.")])

    messages = []
    for shot, answer in shots:
        messages += [user(shot.fields["question"], with_shot_images), chat_turn("assistant", [text_part(answer)])]
    return messages + [user(query.fields["question"], True)]


@pytest.mark.parametrize("text_only_shots", [False, True])
def test_chat_format_renders_as_the_processors_chat_template(tiny_idefics3, image, text_only_shots):
    """The checkpoint's opening and the rendered turns are the template's text; zero-shot's text-only shots get
    "User: " with its space."""
    template = PROMPT_FORMATS.get("idefics3-chat").template("vqa")
    shots = [(vqa_example(1, "What color is the bus?", image), "red"), (vqa_example(2, "How many dogs are there?", image), "2")]
    query = vqa_example(3, "What is on the table?", image)
    expected = tiny_idefics3.processor.apply_chat_template(few_shot_messages(shots, query, not text_only_shots),
                                                           add_generation_prompt=True)
    prompt = render(template, shots, query, text_only_shots=text_only_shots)
    assert tiny_idefics3.prompt_texts([prompt]) == [expected]


def test_chat_prompt_ids_are_apply_chat_templates(tiny_idefics3, image):
    """Token for token (the opening's BOS once, every image's crops) as the processor's own tokenizing chat template."""
    shots = [(vqa_example(1, "What color is the bus?", image), "red")]
    query = vqa_example(2, "What is on the table?", image)
    messages = few_shot_messages(shots, query)
    for message in messages:
        for part in message["content"]:
            if part["type"] == "image":
                part["image"] = image_of(image)
    expected = tiny_idefics3.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                           return_dict=True, return_tensors="pt")
    prompt = render(PROMPT_FORMATS.get("idefics3-chat").template("vqa"), shots, query)
    got = tiny_idefics3.encode([prompt], [0], "")
    assert torch.equal(got["input_ids"], expected["input_ids"])
    assert torch.equal(got["pixel_values"], expected["pixel_values"])


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_prefix_scores_equal_naive_scores(tiny_idefics3, reduction):
    lengths = tiny_idefics3.encode(MIXED_PROMPTS, [0] * 3, "")["attention_mask"].sum(dim=1).tolist()
    assert len(set(lengths)) == 3  # left padding is exercised
    assert_prefix_scores_equal_naive_scores(tiny_idefics3, reduction)


def test_scores_are_the_candidates_log_likelihood(tiny_idefics3, image):
    """A candidate's summed log-probability equals one full forward over prompt + candidate, through the processor."""
    prompt = render(PROMPT_FORMATS.get("idefics3-chat").template("vqa"), [], vqa_example(1, "What color is it?", image))
    (sums,) = tiny_idefics3.score([prompt], [[" red", " dark blue"]])
    for candidate, total in zip([" red", " dark blue"], sums):
        joined = tiny_idefics3.encode([Prompt(merge_text(prompt.segments + (TextSegment(candidate),)))], [0], "")
        start = tiny_idefics3.encode([prompt], [0], "")["input_ids"].shape[1]
        with torch.inference_mode():
            logits = tiny_idefics3.model(**joined).logits[0].float()
        targets = joined["input_ids"][0, start:]
        expected = torch.log_softmax(logits[start - 1:-1], dim=-1).gather(1, targets.unsqueeze(1)).sum().item()
        assert total == pytest.approx(expected, abs=1e-4)


def test_prefix_scoring_encodes_the_images_once_with_a_small_budget_too(tiny_idefics3, monkeypatch):
    calls: list[int] = []
    encode_images = tiny_idefics3.model.model.get_image_features
    monkeypatch.setattr(tiny_idefics3.model.model, "get_image_features",
                        lambda *args, **kwargs: calls.append(1) or encode_images(*args, **kwargs))
    small = Idefics3Model(tiny_idefics3.model, tiny_idefics3.processor, tiny_idefics3.info, "cpu", tiny_idefics3.options,
                          score_token_budget=1)
    scores = small.score(MIXED_PROMPTS, MIXED_CANDIDATES)
    assert len(calls) == 1
    assert largest_gap(scores, tiny_idefics3.score(MIXED_PROMPTS, MIXED_CANDIDATES)) < 1e-4


def square() -> Example:
    """A demo image: square, as image_tokens counts (resized up or down to `longest_edge` before splitting)."""
    from PIL import Image

    path = REPO / "tasks" / "demo" / "vqa" / "train2014" / "COCO_train2014_000000000000.jpg"
    width, height = Image.open(path).size
    assert width == height
    return Example("sq", (ImageRef("sq", path),), {})


def test_image_splitting_longest_edge_and_what_an_image_costs(tiny_idefics3_folder, image):
    """Split, a square image is 2 x 2 crops and the whole image (each tagged); unsplit, the whole image alone; a wider
    one gets fewer crops; image_tokens is the square image's count, so no image costs more."""
    caption = PROMPT_FORMATS.get("idefics3").template("caption")
    split = Idefics3Model.load(tiny_idefics3_folder)
    whole = Idefics3Model.load(tiny_idefics3_folder, options=ModelOptions(do_image_splitting=False))
    small = Idefics3Model.load(tiny_idefics3_folder, options=ModelOptions(longest_edge=TINY.IMAGE_SIZE))
    per_block = TINY.IMAGE_SEQ_LEN
    crop, newline, global_image = per_block + 2, 1, per_block + 4  # <fake><row_i_col_j><image>*n; "\n<fake><global-img>...<fake>"
    assert split.image_tokens() == 4 * crop + 2 * newline + global_image
    assert whole.image_tokens() == per_block + 3
    assert small.image_tokens() == per_block + 3  # an image that fits the vision tower is not split
    assert whole.options.recorded() == {"do_image_splitting": False, "longest_edge": TINY.LONGEST_EDGE}
    assert small.options.recorded() == {"do_image_splitting": True, "longest_edge": TINY.IMAGE_SIZE}

    def cost(model, example):
        prompt = render(caption, [], example)
        text = len(model.tokenizer.encode(model.prompt_texts([prompt])[0], add_special_tokens=False)) - 1  # but <image>
        return int(model.encode([prompt], [0], "")["attention_mask"].sum()) - text

    for model in (split, whole, small):
        assert cost(model, square()) == model.image_tokens()
    assert cost(split, Example("1", (image,), {})) == 2 * crop + newline + global_image < split.image_tokens()


def test_prompt_lengths_for_the_context_budget_bound_the_encoded_lengths(tiny_idefics3, image):
    """Square demo images: exactly the encoded length; a wide image gets fewer crops than counted: an upper bound."""
    encoded = tiny_idefics3.encode(MIXED_PROMPTS, [0] * 3, "")["attention_mask"].sum(dim=1).tolist()
    assert tiny_idefics3.prompt_lengths(MIXED_PROMPTS) == encoded
    wide = render(PROMPT_FORMATS.get("idefics3-chat").template("vqa"), [], vqa_example(1, "What is it?", image))
    (bound,) = tiny_idefics3.prompt_lengths([wide])
    assert bound > int(tiny_idefics3.encode([wide], [0], "")["attention_mask"].sum())
    assert tiny_idefics3.prompt_lengths([]) == []


def test_smolvlm2_without_its_processors_packages_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "smolvlm"}))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("torchvision", "num2words") else object())
    with pytest.raises(ConfigError, match="model_type smolvlm.*needs torchvision and num2words; install them"):
        resolve_model(str(tmp_path))


def test_generation_stops_and_never_writes_image_tags(tiny_idefics3, image):
    prompt = render(PROMPT_FORMATS.get("idefics3-chat").template("vqa"), [], vqa_example(1, "What is it?", image))
    (output,) = tiny_idefics3.generate([prompt], GenerationParams(max_new_tokens=8, stop_sequences=("<end_of_utterance>",)))
    assert isinstance(output, str) and not any(tag in output for tag in ("<image>", "<global-img>", "<row_1_col_1>"))
    assert_two_token_stop_ends_generation(tiny_idefics3, "idefics3", image)


def predictions(out: Path) -> dict:
    """(task, shots, sample id) -> prediction, from every cell's per-sample records."""
    found = {}
    for path in sorted(out.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "prediction" in record:
                found[path.parent.name, path.name, record["id"]] = record["prediction"]
    return found


@pytest.mark.slow
def test_evals_run_on_a_local_tiny_idefics3_folder_at_batch_sizes_1_and_4(tiny_idefics3_folder, tmp_path):
    runs = {}
    for size in (1, 4):
        done = run_demo(str(tiny_idefics3_folder), tmp_path / str(size), "--batch-size", str(size))
        assert done.returncode == 0, done.stderr
        runs[size] = predictions(tmp_path / str(size))
    found = protocols(tmp_path / "4")
    assert {p["task"] for p in found} == set(demo_tasks())
    assert {p["shots"] for p in found} == {0, 4}
    assert all(p["model_family"] == "idefics3" and p["prompt_format"] == "idefics3-chat" for p in found)
    assert all(p["model_args"] == {"do_image_splitting": True, "longest_edge": TINY.LONGEST_EDGE} for p in found)
    assert runs[1] and runs[1].keys() == runs[4].keys()
    for key, prediction in runs[1].items():  # the same answers; a ranked task's probabilities to float32's last bits
        assert same_prediction(prediction, runs[4][key]), (key, prediction, runs[4][key])


def same_prediction(first, second) -> bool:
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(same_prediction(first[k], second[k]) for k in first)
    if isinstance(first, float) and isinstance(second, float):
        return first == pytest.approx(second, abs=1e-4)
    return first == second
