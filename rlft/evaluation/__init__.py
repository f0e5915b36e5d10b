"""Evaluation: generation for eval, scoring, metrics, the general suite, reports, the closing before/after check."""
