"""Benchmarks as registered declarations; importing this package registers the built-in tasks."""

from tasks import vqa  # noqa: F401
