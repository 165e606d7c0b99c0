"""Evaluation: metrics (pure functions), the protocol runner, metrics.json, the HTML report, the gate."""
