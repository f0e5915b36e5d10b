"""Blind A/B rating: the page hides the mapping; a real headless Chromium rates; ab-tally unblinds."""

from __future__ import annotations

import json
import shutil

import pytest

from rlft.commands import ab
from rlft.core.errors import run_cli
from tests.conftest import run_cmd

MODELS = ["base", "runs/math-secret-name"]


def samples(n: int = 6) -> list[dict]:
    return [{"id": f"task-{i:04d}", "prompt": f"What is {i} + {i}?",
             "outputs": {"base": {"text": f"I think {i}."}, MODELS[1]: {"text": f"The answer is {2 * i}."}}}
            for i in range(n)]


@pytest.fixture
def page(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples()))
    assert run_cli(ab.main, [str(path), "--models", *MODELS, "--out", str(tmp_path / "ab"), "--seed", "3"]) == 0
    return tmp_path / "ab"


def test_page_never_contains_the_mapping_and_labels_are_shuffled(page):
    html = (page / "index.html").read_text()
    secret = json.loads((page / "secret.json").read_text())
    assert "math-secret-name" not in html and "secret" not in html.lower().replace("secret.json", "")
    firsts = {entry["A"] for entry in secret["items"].values()}
    assert firsts == set(MODELS), "label A must not always be the same model"


def test_tally_unblinds_by_the_secret(page):
    secret = json.loads((page / "secret.json").read_text())
    # the rater always prefers the trained model, whatever label it got
    ratings = [{"id": item, "choice": next(lab for lab, m in mapping.items() if m == MODELS[1])}
               for item, mapping in secret["items"].items()]
    result = ab.tally(secret, ratings, resamples=100)
    assert result[MODELS[1]]["win_rate"] == 1.0 and result["base"]["win_rate"] == 0.0
    ties = ab.tally(secret, [{"id": i, "choice": "tie"} for i in secret["items"]], resamples=100)
    assert ties["base"]["win_rate"] == 0.5


def test_bad_inputs_are_one_line(tmp_path, page, capsys):
    assert run_cli(ab.main, [str(tmp_path / "none.jsonl"), "--models", "a", "b"]) == 2
    ratings = tmp_path / "r.json"
    ratings.write_text(json.dumps({"ratings": [{"id": "nope", "choice": "A"}]}))
    assert run_cli(ab.tally_main, [str(page / "secret.json"), str(ratings)]) == 2
    assert "do not belong together" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed (make setup installs it)")
def test_rating_in_headless_chromium_then_tally(page, tmp_path):
    from playwright.sync_api import sync_playwright

    secret = json.loads((page / "secret.json").read_text())
    wanted = {item: next(lab for lab, m in mapping.items() if m == MODELS[1])
              for item, mapping in secret["items"].items()}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        tab = browser.new_page()
        tab.goto((page / "index.html").as_uri())
        items = list(wanted)
        for item in items[:-1]:
            tab.click(f'button.choice[data-item="{item}"][data-choice="{wanted[item]}"]')
        tab.click(f'button.choice[data-item="{items[-1]}"][data-choice="tie"]')
        assert tab.inner_text("#progress") == f"{len(items)} / {len(items)} rated"
        with tab.expect_download() as download:
            tab.click("#export")
        download.value.save_as(tmp_path / "ratings.json")
        exported = tab.input_value("#ratings")
        tab.screenshot(path=str(tmp_path / "ab.png"))
        browser.close()
    assert json.loads(exported) == json.loads((tmp_path / "ratings.json").read_text())
    result = run_cmd(["rlft", "ab-tally", str(page / "secret.json"), str(tmp_path / "ratings.json")])
    assert result.returncode == 0, result.stderr
    n = len(items)
    rates = ab.tally(secret, json.loads(exported)["ratings"], resamples=100)
    assert rates[MODELS[1]]["win_rate"] == pytest.approx((n - 1 + 0.5) / n)
    assert f"{(n - 1 + 0.5) / n:.1%}" in result.stdout
