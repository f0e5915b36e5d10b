"""Guess the number: the model calls ``guess`` and is told higher, lower or correct; the episode scores itself.

The class follows TRL's environment contract, which rlft reads as it is
(``environment: examples.guess_number.env:GuessNumber``): ``reset`` starts
an episode from a dataset row (its ``secret`` column), each public method is
a tool the model may call, ``get_reward`` scores the finished episode.

Example:
    >>> env = GuessNumber()
    >>> env.reset(secret=7), env.guess(number=4), env.guess(number=9), env.guess(number=7)
    (None, 'higher', 'lower', 'correct')
    >>> env.get_reward()
    0.8
    >>> rows(3, seed=0)[0]["prompt"][0]["content"][:40]
    'I am thinking of a whole number from 1 t'
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

LOW, HIGH = 1, 10
PROMPT = (f"I am thinking of a whole number from {LOW} to {HIGH}. Find it: call the guess tool with a number and it "
          "tells you whether my number is higher, lower or correct. When it says correct, reply with the number.")


class GuessNumber:
    """One episode: a secret number; the model guesses until it is told ``correct``."""

    def reset(self, secret: int, **row: object) -> None:
        """Start an episode on the row's ``secret``; the prompt already says what to do, so nothing is added."""
        self.secret = int(secret)
        self.guesses = 0
        self.found = False

    def guess(self, number: int) -> str:
        """Guess the secret number.

        Args:
            number: Your guess, a whole number from 1 to 10.

        Returns:
            "higher" if the secret number is larger, "lower" if it is smaller, "correct" if you found it.
        """
        self.guesses += 1
        number = int(number)
        if number == self.secret:
            self.found = True
            return "correct"
        return "higher" if self.secret > number else "lower"

    def get_reward(self) -> float:
        """1.0 for finding it at the first guess, 0.1 less per extra guess (at least 0.5); 0.0 if never found."""
        return round(max(0.5, 1.1 - 0.1 * self.guesses), 2) if self.found else 0.0


def rows(n: int, seed: int) -> list[dict]:
    """``n`` dataset rows: the prompt, the secret, and the secret as ``answer`` (what the closing check reports)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        secret = rng.randint(LOW, HIGH)
        out.append({"prompt": [{"role": "user", "content": PROMPT}], "secret": secret, "answer": str(secret)})
    return out


if __name__ == "__main__":  # python -m examples.guess_number.env examples/guess_number/data
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", 200, 0), ("test", 40, 1)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(n, seed=seed)))
