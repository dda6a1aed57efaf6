"""IDEFICS2: a tiny checkpoint built from Idefics2Config (no download) loads by folder, renders the chat format as
its processor's chat template does, scores candidates exactly (the prefix-reusing `score` as `score_naive`), applies the
image options and runs `evals run`."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evals.errors import ConfigError
from evals.models import BUNDLED_CHECKPOINT, resolve_model
from evals.models.idefics2 import Idefics2Model
from evals.models.options import ModelOptions
from evals.records import Example, ImageRef, ImageSegment, Prompt, TextSegment
from evals.registry import PROMPT_FORMATS, suite_tasks
from prompts import render

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTS = Path(__file__).parent / "snapshots"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "250"}
IMAGE_TOKENS_PER_IMAGE = 4  # scripts/make_tiny_idefics2.py IMAGE_SEQ_LEN


@pytest.fixture(scope="session")
def tiny_idefics2_folder(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("make_tiny_idefics2", REPO / "scripts" / "make_tiny_idefics2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(tmp_path_factory.mktemp("models") / "tiny_idefics2")


@pytest.fixture(scope="session")
def tiny_idefics2(tiny_idefics2_folder) -> Idefics2Model:
    return resolve_model(str(tiny_idefics2_folder))


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> ImageRef:
    from PIL import Image

    path = tmp_path_factory.mktemp("images") / "wide.png"
    Image.new("RGB", (40, 20), (200, 30, 30)).save(path)
    return ImageRef("wide", path)


def vqa_example(n: int, question: str, image: ImageRef) -> Example:
    return Example(str(n), (image,), {"question": question}, ("x",) * 10)


def test_folder_is_detected_as_idefics2_with_the_chat_format(tiny_idefics2):
    info = tiny_idefics2.info
    assert (info.family, info.prompt_format, info.dtype) == ("idefics2", "idefics2-chat", "float32")
    assert info.revision.startswith("sha256:")
    # the image options in effect are recorded even though none was given
    assert tiny_idefics2.options.recorded() == {"do_image_splitting": False, "longest_edge": 32}


def test_base_checkpoints_get_the_interleaved_format(tiny_idefics2_folder):
    model = Idefics2Model.load(tiny_idefics2_folder, name="my-idefics2-8b-base")
    assert model.info.prompt_format == "idefics2"


def test_chat_format_renders_as_the_processors_chat_template(tiny_idefics2, image):
    """Shots are earlier user/assistant turns and the query the last user turn plus the generation prompt."""
    template = PROMPT_FORMATS.get("idefics2-chat").template("vqa")
    shots = [(vqa_example(1, "What color is the bus?", image), "red"), (vqa_example(2, "How many dogs are there?", image), "2")]
    query = vqa_example(3, "What is on the table?", image)

    def user(question):
        return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"{question}\nGive a very brief answer."}]}

    messages = []
    for shot, answer in shots:
        messages += [user(shot.fields["question"]), {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    messages.append(user(query.fields["question"]))
    expected = tiny_idefics2.processor.apply_chat_template(messages, add_generation_prompt=True)
    assert render(template, shots, query).text == expected
    # the committed snapshot of this format is that same text
    snapshot = (SNAPSHOTS / "prompt_idefics2-chat_vqa_2shot.txt").read_text().split("\n--- images:")[0]
    assert snapshot == expected


def chat_turn(role: str, content: list[dict]) -> dict:
    return {"role": role, "content": content}


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def test_zero_shot_text_only_shots_render_as_the_chat_template(tiny_idefics2, image):
    """A text-only shot's user turn starts with text, so the template writes "User: " (a space); the query keeps "User:"."""
    template = PROMPT_FORMATS.get("idefics2-chat").template("vqa")
    shots = [(vqa_example(1, "What color is the bus?", image), "red"), (vqa_example(2, "How many dogs are there?", image), "2")]
    query = vqa_example(3, "What is on the table?", image)
    messages = []
    for shot, answer in shots:
        messages += [chat_turn("user", [text_part(f"{shot.fields['question']}\nGive a very brief answer.")]),
                     chat_turn("assistant", [text_part(answer)])]
    messages.append(chat_turn("user", [{"type": "image"}, text_part("What is on the table?\nGive a very brief answer.")]))
    expected = tiny_idefics2.processor.apply_chat_template(messages, add_generation_prompt=True)
    assert render(template, shots, query, text_only_shots=True).text == expected
    assert expected.startswith("User: What color")


def test_text_before_the_image_renders_as_the_chat_template(tiny_idefics2, image):
    """MMMU places the image where the question names it: text first, so "User: " with its space."""
    template = PROMPT_FORMATS.get("idefics2-chat").template("mmmu")
    instruction = "Answer with the option's letter from the given choices directly."
    fields = {"question": "Which shape is shown in <image>?", "options": "\n(A) circle\n(B) square", "instruction": instruction}
    query = Example("q", (image,), fields, ("A",))
    shot = Example("s", (image,), {**fields, "question": "Is this red? <image>"}, ("B",))
    messages = [chat_turn("user", [text_part("Is this red? "), {"type": "image"}, text_part(f"\n(A) circle\n(B) square\n{instruction}")]),
                chat_turn("assistant", [text_part("B")]),
                chat_turn("user", [text_part("Which shape is shown in "), {"type": "image"},
                                   text_part(f"?\n(A) circle\n(B) square\n{instruction}")])]
    expected = tiny_idefics2.processor.apply_chat_template(messages, add_generation_prompt=True)
    assert render(template, [(shot, "B")], query).text == expected


def test_scores_are_the_candidates_log_likelihood(tiny_idefics2, image):
    """Each candidate's summed (and mean) log-probability equals one full forward over prompt + candidate."""
    prompt = render(PROMPT_FORMATS.get("idefics2").template("vqa"), [], vqa_example(1, "What color is it?", image))
    candidates = [" red", " dark blue"]
    (sums,) = tiny_idefics2.score([prompt], [candidates])
    (means,) = tiny_idefics2.score([prompt], [candidates], reduction="mean")
    processor, model = tiny_idefics2.processor, tiny_idefics2.model
    images = [[image_of(image)]]
    before = processor(text=[prompt.text], images=images, return_tensors="pt")
    for candidate, total, mean in zip(candidates, sums, means):
        joined = processor(text=[prompt.text + candidate], images=images, return_tensors="pt")
        start = before["input_ids"].shape[1]
        assert torch.equal(joined["input_ids"][0, :start], before["input_ids"][0])
        with torch.inference_mode():
            logits = model(**joined).logits[0].float()
        targets = joined["input_ids"][0, start:]
        expected = torch.log_softmax(logits[start - 1:-1], dim=-1).gather(1, targets.unsqueeze(1)).sum().item()
        assert total == pytest.approx(expected, abs=1e-4)
        assert mean == pytest.approx(expected / len(targets), abs=1e-4)


DEMO_IMAGES = REPO / "tasks" / "demo" / "vqa" / "train2014"
QUERY = TextSegment("Question: What is in the image? Answer:")


def demo_image(n: int) -> ImageSegment:
    return ImageSegment(ImageRef(f"train-{n}", DEMO_IMAGES / f"COCO_train2014_{n:012d}.jpg"))


# One image, three images (two shots), none; candidate lists of 6, 12 and 2 of one to many tokens.
MIXED_PROMPTS = (
    Prompt((demo_image(7), QUERY)),
    Prompt((demo_image(0), TextSegment("Answer: red\n"), demo_image(1), TextSegment("Answer: two dogs\n"), demo_image(9), QUERY)),
    Prompt((TextSegment("Question: Is the sky blue? Answer:"),)),
)
MIXED_CANDIDATES = (
    (" red", " yes", " red circle", " dark green triangle", " golden retriever", "cat"),
    tuple(f" {color} {shape}" for color in ("red", "blue", "green") for shape in ("circle", "star", "moon", "ring")),
    (" yes", " no"),
)


def largest_gap(first: list[list[float]], second: list[list[float]]) -> float:
    assert [len(row) for row in first] == [len(row) for row in second]
    return max(abs(a - b) for x, y in zip(first, second) for a, b in zip(x, y))


def test_mixed_prompts_cover_the_hard_cases(tiny_idefics2):
    """The comparisons below mean something only if prompts differ in length (left padding) and images, and
    candidates in token count (one-token rows, right padding)."""
    assert [len(p.images) for p in MIXED_PROMPTS] == [1, 3, 0]
    lengths = tiny_idefics2.encode(MIXED_PROMPTS, [0] * 3, "")["attention_mask"].sum(dim=1).tolist()
    assert len(set(lengths)) == 3
    counts = {len(c) for options in tiny_idefics2.candidate_ids(MIXED_PROMPTS, MIXED_CANDIDATES) for c in options}
    assert 1 in counts and max(counts) >= 4


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_prefix_scores_equal_naive_scores(tiny_idefics2, reduction):
    assert_prefix_scores_equal_naive_scores(tiny_idefics2, reduction)


def assert_prefix_scores_equal_naive_scores(model, reduction: str) -> None:
    """On the mixed prompts: every score within 1e-4 of the naive path's, the same best candidate for each prompt."""
    fast = model.score(MIXED_PROMPTS, MIXED_CANDIDATES, reduction)
    naive = model.score_naive(MIXED_PROMPTS, MIXED_CANDIDATES, reduction)
    assert largest_gap(fast, naive) < 1e-4
    for fast_row, naive_row in zip(fast, naive):
        assert fast_row.index(max(fast_row)) == naive_row.index(max(naive_row))


def test_one_candidate_per_forward_gives_the_same_scores(tiny_idefics2, monkeypatch):
    """A budget of one token puts each multi-token candidate in a forward of its own; the default fits all in one."""
    small = Idefics2Model(tiny_idefics2.model, tiny_idefics2.processor, tiny_idefics2.info, "cpu", tiny_idefics2.options,
                          score_token_budget=1)
    chunks: list[int] = []
    record = Idefics2Model.chunk_log_probs

    def counted(self, prompt_mask, prefix, rows):
        chunks.append(len(rows))
        return record(self, prompt_mask, prefix, rows)

    monkeypatch.setattr(Idefics2Model, "chunk_log_probs", counted)
    ids = tiny_idefics2.candidate_ids(MIXED_PROMPTS, MIXED_CANDIDATES)
    longer = sum(len(c) > 1 for options in ids for c in options)
    scores = small.score(MIXED_PROMPTS, MIXED_CANDIDATES)
    assert chunks == [1] * longer
    chunks.clear()
    assert largest_gap(scores, tiny_idefics2.score(MIXED_PROMPTS, MIXED_CANDIDATES)) < 1e-4
    assert chunks == [longer]
    assert largest_gap(scores, tiny_idefics2.score_naive(MIXED_PROMPTS, MIXED_CANDIDATES)) < 1e-4


def test_prefix_scoring_encodes_the_images_once(tiny_idefics2, monkeypatch):
    """One vision-tower call for the whole batch; the naive path encodes a prompt's images again for every chunk."""
    calls: list[int] = []
    vision = tiny_idefics2.model.model
    encode_images = vision.get_image_features

    def counted(pixel_values, *args, **kwargs):
        calls.append(1)
        return encode_images(pixel_values, *args, **kwargs)

    monkeypatch.setattr(vision, "get_image_features", counted)
    tiny_idefics2.score(MIXED_PROMPTS, MIXED_CANDIDATES)
    assert len(calls) == 1
    calls.clear()
    small = Idefics2Model(tiny_idefics2.model, tiny_idefics2.processor, tiny_idefics2.info, "cpu", tiny_idefics2.options,
                          score_token_budget=1)
    small.score_naive(MIXED_PROMPTS[:1], MIXED_CANDIDATES[:1])
    assert len(calls) == len(MIXED_CANDIDATES[0])


def test_scoring_requests_are_checked(tiny_idefics2):
    with pytest.raises(ConfigError, match="score got 2 prompts but 1 candidate lists"):
        tiny_idefics2.score(MIXED_PROMPTS[:2], MIXED_CANDIDATES[:1])
    with pytest.raises(ConfigError, match="unknown log-likelihood reduction 'max'"):
        tiny_idefics2.score(MIXED_PROMPTS[:1], MIXED_CANDIDATES[:1], reduction="max")
    with pytest.raises(ConfigError, match="score_token_budget must be a positive number of tokens, not 0"):
        Idefics2Model(tiny_idefics2.model, tiny_idefics2.processor, tiny_idefics2.info, "cpu", tiny_idefics2.options,
                      score_token_budget=0)
    assert tiny_idefics2.score([], []) == []
    assert tiny_idefics2.score(MIXED_PROMPTS[:1], [[]]) == [[]]


def image_of(ref: ImageRef):
    from evals.images import load_image

    return load_image(ref)


def test_image_splitting_and_longest_edge_reach_the_processor(tiny_idefics2_folder, image):
    prompt = Prompt(render(PROMPT_FORMATS.get("idefics2").template("caption"), [], Example("1", (image,), {})).segments)
    plain = Idefics2Model.load(tiny_idefics2_folder)
    split = Idefics2Model.load(tiny_idefics2_folder, options=ModelOptions(do_image_splitting=True, longest_edge=16))
    image_id = plain.tokenizer.convert_tokens_to_ids("<image>")
    plain_inputs, split_inputs = plain.encode([prompt], [0], ""), split.encode([prompt], [0], "")
    assert int((plain_inputs["input_ids"] == image_id).sum()) == IMAGE_TOKENS_PER_IMAGE
    assert int((split_inputs["input_ids"] == image_id).sum()) == 5 * IMAGE_TOKENS_PER_IMAGE  # 4 crops + the whole image
    assert plain_inputs["pixel_values"].shape[-2:] == (16, 32)  # 40x20 at native aspect ratio, longest edge 32
    assert split.options.recorded() == {"do_image_splitting": True, "longest_edge": 16}
    # what an image costs a prompt: its tokens between <fake_token_around_image> marks, 5 images' worth when split
    assert plain.image_tokens() == IMAGE_TOKENS_PER_IMAGE + 2
    assert split.image_tokens() == 5 * (IMAGE_TOKENS_PER_IMAGE + 1) + 1
    assert split.image_tokens() == int(split_inputs["attention_mask"].sum()) - len(split.tokenizer.encode(prompt.text.replace("<image>", "")))


def test_generation_is_text_without_image_tokens(tiny_idefics2, image):
    from evals.records import GenerationParams

    prompt = render(PROMPT_FORMATS.get("idefics2-chat").template("vqa"), [], vqa_example(1, "What is it?", image))
    (output,) = tiny_idefics2.generate([prompt], GenerationParams(max_new_tokens=4, stop_sequences=("<end_of_utterance>",)))
    assert isinstance(output, str) and "<image>" not in output and "<fake_token_around_image>" not in output


def test_a_stop_string_of_two_tokens_ends_generation(tiny_idefics2, image):
    assert_two_token_stop_ends_generation(tiny_idefics2, "idefics2", image)


def assert_two_token_stop_ends_generation(model, prompt_format: str, image: ImageRef) -> None:
    """Found from the model's own free output (never hard-coded): two consecutive generated tokens whose text is two
    tokens again; generation with that stop string ends right after it."""
    from evals.records import GenerationParams

    tokenizer = model.tokenizer
    free_params = GenerationParams(max_new_tokens=16, num_beams=1, stop_sequences=())
    outputs = []
    for question in ("What is it?", "How many shapes are there?", "What color is the square?", "Is there a red shape?"):
        prompt = render(PROMPT_FORMATS.get(prompt_format).template("vqa"), [], vqa_example(1, question, image))
        (free,) = model.generate([prompt], free_params)
        outputs.append(free)
        ids = tokenizer.encode(free, add_special_tokens=False)
        pairs = [tokenizer.decode(ids[i:i + 2]) for i in range(len(ids) - 2)]
        stop = next((p for p in pairs if len(tokenizer.encode(p, add_special_tokens=False)) == 2 and p.strip() and p in free
                     and free.index(p) + len(p) < len(free)), None)
        if stop is not None:
            break
    # The seeded tiny model's outputs are fixed: no stretch in any of them is a failure, not a reason to skip.
    assert stop is not None, f"no two-token stretch to stop at in {outputs!r}"
    (stopped,) = model.generate([prompt], GenerationParams(max_new_tokens=16, num_beams=1, stop_sequences=(stop,)))
    assert stopped == free[: free.index(stop) + len(stop)]


def demo_tasks() -> list[str]:
    return suite_tasks("demo")


def run_demo(model: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evals", "run", "--model", model, "--shots", "0,4", "--limit", "4", "--output-dir", str(out), *extra],
                          check=False, env=ENV, capture_output=True, text=True, timeout=600)


def protocols(out: Path) -> list[dict]:
    return [json.loads(p.read_text())["protocol"] for p in sorted(out.rglob("*.json"))]


@pytest.mark.slow
def test_evals_run_on_a_local_tiny_idefics2_folder(tiny_idefics2_folder, tmp_path):
    done = run_demo(str(tiny_idefics2_folder), tmp_path, "--model-args", "dtype=fp32,do_image_splitting=true")
    assert done.returncode == 0, done.stderr
    found = protocols(tmp_path)
    assert {p["task"] for p in found} == set(demo_tasks())
    assert {p["shots"] for p in found} == {0, 4}
    assert all(p["model_family"] == "idefics2" and p["prompt_format"] == "idefics2-chat" for p in found)
    assert all(p["model_args"] == {"do_image_splitting": True, "longest_edge": 32} for p in found)


@pytest.mark.slow
def test_evals_run_detects_a_local_copy_of_tiny_idefics(tmp_path):
    folder = tmp_path / "my_checkpoint"
    shutil.copytree(BUNDLED_CHECKPOINT, folder)
    done = run_demo(str(folder), tmp_path / "out", "--model-args", "attn_implementation=eager")
    assert done.returncode == 0, done.stderr
    found = protocols(tmp_path / "out")
    assert {p["task"] for p in found} == set(demo_tasks())
    assert all(p["model_family"] == "idefics" and p["model_args"] == {"attn_implementation": "eager"} for p in found)
