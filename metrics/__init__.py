"""Metrics: pure functions of predictions and references, matching the reference scorers' numbers."""
