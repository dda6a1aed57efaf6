"""Each assumption evals/models/compat.py makes about transformers, one test each, on the bundled tiny IDEFICS and a
perceiver-less twin: when an upstream release breaks one, the test named after it fails (and says what moved)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from evals.models import compat
from evals.models.idefics import IdeficsModel
from evals.records import GenerationParams
from tests.test_vision_cache import few_shot_prompts, twin


@pytest.fixture(scope="module")
def no_perceiver(tmp_path_factory) -> IdeficsModel:
    """The bundled checkpoint's processor and config with `use_resampler` off and seeded random weights: the
    IDEFICS variant whose image features go in as `image_encoder_embeddings`."""
    from transformers import IdeficsConfig, IdeficsForVisionText2Text

    from evals.models import BUNDLED_CHECKPOINT

    folder = tmp_path_factory.mktemp("no-perceiver")

    for item in BUNDLED_CHECKPOINT.iterdir():
        if item.name not in ("model.safetensors", "config.json", "training.json"):
            shutil.copy(item, folder / item.name)
    config = json.loads((BUNDLED_CHECKPOINT / "config.json").read_text())
    config["use_resampler"] = False
    torch.manual_seed(0)
    IdeficsForVisionText2Text(IdeficsConfig(**config)).save_pretrained(folder)
    return IdeficsModel.load(folder)


def pixels_and_features(model: IdeficsModel, prompts):
    """A batch's processor inputs with pixel values, and the same batch as the feature path builds it."""
    plain = model.encode(prompts)
    inputs, features = twin(model, feature_cache=False).inputs_with_features(prompts, [0] * len(prompts), "")
    return plain, inputs, features


def test_idefics_output_fields(tiny_idefics):
    """The release's output fields are the ones `idefics_outputs_carry_image_outputs` says."""
    inputs = tiny_idefics.encode(few_shot_prompts(1))
    with torch.inference_mode():
        output = tiny_idefics.model(**inputs)
    names = {field.name for field in dataclasses.fields(output)}
    expected = "image_outputs" if compat.idefics_outputs_carry_image_outputs() else "image_hidden_states"
    assert expected in names
    if expected == "image_outputs":
        assert output.image_outputs.last_hidden_state is not None


@pytest.mark.parametrize("variant", ["perceiver", "no perceiver"])
def test_idefics_features_stand_in_for_pixels(tiny_idefics, no_perceiver, variant):
    """`idefics_vision_features` / `idefics_resample` compute what the forward computes from pixel values, and
    `idefics_forward_kwargs` passes them in the shape the forward reads: the logits are the pixel path's."""
    model = tiny_idefics if variant == "perceiver" else no_perceiver
    prompts = few_shot_prompts(2)
    plain, inputs, features = pixels_and_features(model, prompts)
    with torch.inference_mode():
        expected = model.model(**plain).logits
        features = compat.idefics_forward_features(model.model, features)
        got = model.model(**inputs, **compat.idefics_forward_kwargs(model.model, features)).logits
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert expected.abs().max() > 0


@pytest.mark.parametrize("variant", ["perceiver", "no perceiver"])
def test_idefics_generate_with_features(tiny_idefics, no_perceiver, variant):
    """`generate` given cached features (`idefics_generate_kwargs`) writes what it writes from pixel values, with beams."""
    model = tiny_idefics if variant == "perceiver" else no_perceiver
    prompts = few_shot_prompts(3)
    params = GenerationParams(max_new_tokens=6, num_beams=3)
    expected = twin(model, feature_cache=False).generate(prompts, params)
    assert twin(model, feature_cache=True).generate(prompts, params) == expected
    assert any(text.strip() for text in expected)


def test_idefics_pooled_features(tiny_idefics):
    """The vision tower's pooled output: one vector of the tower's width per image, different for different images."""
    from evals.images import load_image

    images = [load_image(ref) for ref in few_shot_prompts(1)[0].images[:2]]
    with torch.inference_mode():
        pooled = compat.idefics_pooled_features(tiny_idefics.model, tiny_idefics.pixel_values(images))
    assert pooled.shape == (2, tiny_idefics.model.config.vision_config.embed_dim)
    assert not torch.allclose(pooled[0], pooled[1])


def prompt_forward(model: IdeficsModel, prompts):
    plain = model.encode(prompts)
    with torch.inference_mode():
        return plain, model.model(**plain, use_cache=True)


def test_output_cache(tiny_idefics):
    """A forward with `use_cache=True` returns a cache (`output_cache`) that holds every prompt position."""
    plain, output = prompt_forward(tiny_idefics, few_shot_prompts(2))
    assert compat.output_cache(output).get_seq_length() == plain["input_ids"].shape[1]


@pytest.mark.parametrize("rows", [[1, 0, 1], [0]])
def test_cache_rows_continue_the_prompt(tiny_idefics, rows):
    """`cache_rows` copies chosen batch rows of a cache, and `cache_kwargs` hands it to the forward: one more token after
    the copied rows gets the logits the whole sequence gets in one forward."""
    prompts = few_shot_prompts(2)
    plain, output = prompt_forward(tiny_idefics, prompts)
    index = torch.tensor(rows)
    token = torch.full((len(rows), 1), 5)
    past = compat.cache_rows(compat.output_cache(output), index, tiny_idefics.model.config)
    assert past.get_seq_length() == plain["input_ids"].shape[1]
    image_mask = plain["image_attention_mask"][index]
    with torch.inference_mode():
        step = tiny_idefics.model(
            input_ids=token, attention_mask=torch.cat([plain["attention_mask"][index], torch.ones_like(token)], dim=1),
            image_attention_mask=image_mask[:, -1:], pixel_values=plain["pixel_values"][index], use_cache=True,
            **compat.cache_kwargs(tiny_idefics.model, past)).logits[:, -1]
        whole = tiny_idefics.model(
            input_ids=torch.cat([plain["input_ids"][index], token], dim=1),
            attention_mask=torch.cat([plain["attention_mask"][index], torch.ones_like(token)], dim=1),
            image_attention_mask=torch.cat([image_mask, image_mask[:, -1:]], dim=1),
            pixel_values=plain["pixel_values"][index]).logits[:, -1]
    assert torch.allclose(step, whole, rtol=1e-5, atol=1e-5)


def test_last_logits_kwargs(tiny_idefics):
    """Where the forward takes `logits_to_keep`, the logits it returns end with the full forward's last position."""
    plain = tiny_idefics.encode(few_shot_prompts(1))
    with torch.inference_mode():
        full = tiny_idefics.model(**plain).logits
        last = tiny_idefics.model(**plain, **compat.last_logits_kwargs(tiny_idefics.model)).logits
    assert torch.allclose(last[:, -1], full[:, -1], rtol=1e-5, atol=1e-5)
    if compat.last_logits_kwargs(tiny_idefics.model):
        assert last.shape[1] == 1


def test_generate_takes_stop_strings(tiny_idefics):
    """`stop_strings` with the tokenizer ends generation at a text that is several tokens long."""
    inputs = tiny_idefics.encode(few_shot_prompts(1))
    free = tiny_idefics.model.generate(**inputs, do_sample=False, max_new_tokens=8)
    text = tiny_idefics.tokenizer.decode(free[0, inputs["input_ids"].shape[1]:])
    stop = text[1:3] if len(text) >= 3 else text
    assert stop.strip(), f"the tiny model's free output {text!r} gives no stop string"
    stopped = tiny_idefics.model.generate(**inputs, do_sample=False, max_new_tokens=8,
                                          **compat.stop_strings_kwargs(tiny_idefics.tokenizer, [stop]))
    assert stopped.shape[1] < free.shape[1]
    assert compat.stop_strings_kwargs(tiny_idefics.tokenizer, []) == {}


def test_clip_image_features(tmp_path):
    """`get_image_features` of a (tiny, random) CLIP gives one projected vector per image, as a tensor."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                     "num_attention_heads": 2},
                        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                        projection_dim=8)
    model = CLIPModel(config).eval()
    with torch.inference_mode():
        features = compat.clip_image_features(model, torch.rand(3, 3, 32, 32))
    assert isinstance(features, torch.Tensor) and features.shape == (3, 8)


def test_no_split_modules(tiny_idefics):
    """A device map keeps IDEFICS' decoder, cross-attention and vision layers whole: the classes exist in the model."""
    found = compat.no_split_modules(tiny_idefics.model)
    classes = {type(m).__name__ for m in tiny_idefics.model.modules()}
    assert {"IdeficsDecoderLayer", "IdeficsGatedCrossAttentionLayer", "IdeficsVisionEncoderLayer"} <= set(found) <= classes


def test_idefics_prompt_texts(tiny_idefics):
    """The processor's text, rebuilt without pixels, tokenizes to exactly the processor's ids: text with spaces at its
    ends, images back to back, an image first and last."""
    from pathlib import Path

    from evals.records import ImageRef, ImageSegment, Prompt, TextSegment

    image = ImageSegment(ImageRef("blank", Path()))
    prompts = [Prompt((TextSegment(" Question: why? "), image, image, TextSegment("Answer: "))),
               Prompt((image, TextSegment("Caption:"), image)), Prompt((TextSegment("text only"),))]
    written = tiny_idefics.processor_inputs(prompts, tiny_idefics.blank_image)
    for row, text in enumerate(compat.idefics_prompt_texts(tiny_idefics.tokenizer, prompts)):
        ids = written["input_ids"][row][written["attention_mask"][row].bool()].tolist()
        assert tiny_idefics.tokenizer(text)["input_ids"] == ids
