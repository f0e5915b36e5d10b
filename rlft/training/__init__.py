"""rlft's GRPO trainer and its training-pass pieces: zero-advantage skipping, length buckets, importance sampling.

Each piece is a ``GRPOTrainer`` mixin with its recipe option next to it.
"""
