"""A multi-turn environment for GRPO: guess a secret number from higher/lower feedback (see README.md)."""
