"""Prompt formats: model-family templates kept as data (templates/*.toml), rendered by pure functions."""

from prompts.formats import PromptFormat, PromptTemplate, load_formats, render

__all__ = ["PromptFormat", "PromptTemplate", "load_formats", "render"]
