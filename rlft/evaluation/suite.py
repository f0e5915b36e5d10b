"""The general-skills suite: did training cost the model what it could already do?

62 short prompts across facts, arithmetic, unit conversion, code questions,
translation and instruction following, written for rlft. Each item has a
verifier, so the suite is scored like the task: greedy decoding, then
:func:`check`. Fine-tuning on one task often erodes these ("forgetting");
the evaluation reports each category's change against the base model.

Verifiers:

- ``contains``: one of ``accept`` appears as a whole word/phrase (case-insensitive),
- ``number``: the final number equals ``accept[0]`` (rlft's math verifier),
- ``regex``: the reply matches ``accept[0]`` (``re.search``, case-insensitive),
- ``words``: the reply has exactly ``accept[0]`` words,
- ``upper``: the reply has letters and all of them are capitals,
- ``no_letter``: the letter ``accept[0]`` never appears,
- ``items``: a comma-separated list of exactly ``accept[0]`` items.

Example:
    >>> item = {"check": "contains", "accept": ["Paris"]}
    >>> check(item, "The capital of France is Paris."), check(item, "It is Lyon.")
    (True, False)
"""

from __future__ import annotations

import re
from typing import Any

from rewards.verifiers import equivalent_batch, extract_answer, gold_answer


def _item(category: str, prompt: str, check: str, *accept: str) -> dict[str, Any]:
    return {"category": category, "prompt": prompt, "check": check, "accept": list(accept)}


SUITE: list[dict[str, Any]] = [
    # facts
    _item("facts", "What is the capital of France?", "contains", "Paris"),
    _item("facts", "What is the capital of Japan?", "contains", "Tokyo"),
    _item("facts", "What is the capital of Italy?", "contains", "Rome"),
    _item("facts", "What is the largest planet in our solar system?", "contains", "Jupiter"),
    _item("facts", "Which planet is known as the Red Planet?", "contains", "Mars"),
    _item("facts", "What gas do plants absorb from the air for photosynthesis?", "contains", "carbon dioxide", "CO2"),
    _item("facts", "Who wrote the play Romeo and Juliet?", "contains", "Shakespeare"),
    _item("facts", "What is the chemical symbol for gold?", "regex", r"\bAu\b"),
    _item("facts", "How many continents are there on Earth?", "contains", "seven", "7"),
    _item("facts", "What is the boiling point of water at sea level in degrees Celsius?", "contains", "100"),
    _item("facts", "Which ocean is the largest?", "contains", "Pacific"),
    _item("facts", "What is the freezing point of water in degrees Fahrenheit?", "contains", "32"),
    # arithmetic
    _item("arithmetic", "What is 7 times 8?", "number", "56"),
    _item("arithmetic", "What is 15 plus 27?", "number", "42"),
    _item("arithmetic", "What is 100 minus 37?", "number", "63"),
    _item("arithmetic", "What is 144 divided by 12?", "number", "12"),
    _item("arithmetic", "What is 9 squared?", "number", "81"),
    _item("arithmetic", "What is half of 50?", "number", "25"),
    _item("arithmetic", "What is 3 + 4 * 2?", "number", "11"),
    _item("arithmetic", "What is 25% of 80?", "number", "20"),
    _item("arithmetic", "What is 1000 minus 1?", "number", "999"),
    _item("arithmetic", "What is 6 times 7?", "number", "42"),
    # unit conversion
    _item("units", "How many centimeters are in one meter?", "contains", "100"),
    _item("units", "How many minutes are in one hour?", "contains", "60"),
    _item("units", "How many grams are in one kilogram?", "contains", "1000", "1,000"),
    _item("units", "How many days are in a week?", "contains", "7", "seven"),
    _item("units", "How many seconds are in two minutes?", "contains", "120"),
    _item("units", "How many millimeters are in one centimeter?", "contains", "10", "ten"),
    _item("units", "How many hours are in one day?", "contains", "24"),
    _item("units", "How many months are in a year?", "contains", "12", "twelve"),
    _item("units", "How many meters are in 3 kilometers?", "contains", "3000", "3,000"),
    _item("units", "How many inches are in one foot?", "contains", "12", "twelve"),
    # code questions
    _item("code", "In Python, what does len([1, 2, 3]) return?", "number", "3"),
    _item("code", "In Python, what is the result of 7 // 2?", "number", "3"),
    _item("code", "In Python, what is the result of 2 ** 3?", "number", "8"),
    _item("code", "Which Python keyword defines a function?", "regex", r"\bdef\b"),
    _item("code", "Which Python keyword starts a loop over the items of a list?", "regex", r"\bfor\b"),
    _item("code", "In Python, what does 'abc'.upper() return?", "contains", "ABC"),
    _item("code", "In Python, what is the value of 10 % 3?", "number", "1"),
    _item("code", "Which Python function prints text to the screen?", "regex", r"\bprint\b"),
    _item("code", "In Python, what type is the value True?", "regex", r"\bbool"),
    _item("code", "In SQL, which keyword selects rows from a table?", "regex", r"\bSELECT\b"),
    # translation
    _item("translation", "Translate 'hello' into Spanish.", "contains", "hola"),
    _item("translation", "Translate 'thank you' into French.", "contains", "merci"),
    _item("translation", "Translate 'cat' into Spanish.", "contains", "gato"),
    _item("translation", "Translate 'water' into French.", "contains", "eau"),
    _item("translation", "Translate 'good morning' into Spanish.", "contains", "buenos días", "buenos dias"),
    _item("translation", "Translate 'dog' into German.", "contains", "Hund"),
    _item("translation", "Translate 'house' into Spanish.", "contains", "casa"),
    _item("translation", "Translate 'yes' into German.", "contains", "ja"),
    _item("translation", "Translate 'goodbye' into Italian.", "contains", "arrivederci", "ciao"),
    _item("translation", "Translate 'one' into French.", "contains", "un", "une"),
    # instruction following
    _item("instructions", "Reply with exactly three words: describe the sky.", "words", "3"),
    _item("instructions", "Reply in all capital letters: what color is grass?", "upper"),
    _item("instructions", "List three fruits as a comma-separated list and nothing else.", "items", "3"),
    _item("instructions", "Answer with only yes or no: is the sun hot?", "regex", r"^\W*yes\W*$"),
    _item("instructions", "Say the word 'banana' and nothing else.", "regex", r"^\W*banana\W*$"),
    _item("instructions", "Reply with exactly one word: what animal barks?", "words", "1"),
    _item("instructions", "Name a color without using the letter e.", "no_letter", "e"),
    _item("instructions", "List four even numbers as a comma-separated list and nothing else.", "items", "4"),
    _item("instructions", "Start your reply with the word 'Sure' and then name a planet.", "regex", r"^\W*sure\b"),
    _item("instructions", "Reply with a number only: how many legs does a spider have?", "regex", r"^\W*8\W*$"),
]


def _contains(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE) is not None


def check(item: dict[str, Any], reply: str) -> bool:
    """Whether ``reply`` passes ``item``'s verifier (see the module docstring)."""
    kind, accept, text = item["check"], item["accept"], reply.strip()
    if kind == "contains":
        return any(_contains(text, phrase) for phrase in accept)
    if kind == "number":
        return equivalent_batch([(extract_answer(text), gold_answer(accept[0]))])[0] is True
    if kind == "regex":
        return re.search(accept[0], text, re.IGNORECASE | re.MULTILINE) is not None
    if kind == "words":
        return len(re.findall(r"[\w'-]+", text)) == int(accept[0])
    if kind == "upper":
        letters = [c for c in text if c.isalpha()]
        return bool(letters) and all(c.isupper() for c in letters)
    if kind == "no_letter":
        return bool(text) and accept[0].lower() not in text.lower()
    if kind == "items":
        parts = [p.strip() for p in text.rstrip(".").split(",")]
        return len(parts) == int(accept[0]) and all(parts) and "\n" not in text
    raise ValueError(f"unknown suite check {kind!r}")


def rows() -> list[dict[str, Any]]:
    """The suite as evaluation rows: a one-turn chat ``prompt`` plus the item's fields.

    Example:
        >>> len(rows()) >= 50 and rows()[0]["prompt"][0]["role"]
        'user'
    """
    return [{**item, "prompt": [{"role": "user", "content": item["prompt"]}], "id": f"general-{i:03d}"}
            for i, item in enumerate(SUITE)]
