"""The dataset review page, driven in a real headless browser (Debian's chromium and its
chromedriver), and its JSON API over plain HTTP.

Each test builds a three-trajectory dataset directory, serves it with `recipe.review_page.serve`
on a free loopback port and checks what the page shows and what lands on disk (Dataset.load,
edits.jsonl, README.md). Waits are explicit (WebDriverWait on what the page shows), never sleeps.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from review_browser import (
    WAIT_S,
    css,
    open_trajectory,
    replace_text,
    save,
    span,
    text_of,
    wait_for,
    wait_listed,
)

from recipe.dataset import CARD, EDITS, Dataset, Review, review_of, set_review
from recipe.review import ToolRunner
from recipe.review_page import MAX_BODY_BYTES, ReviewServer, serve
from training.data import Message, Sample, Span

SPAN_KINDS = ["prompt", "model", "hint", "tool_code", "tool_output", "model"]
TOOL_OUTPUT = "\n```output\n4\n```\n"


def trajectory(trajectory_id: str, problem_id: str, source: str, thinking: str) -> Sample:
    spans = [
        Span(type="prompt", text="<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"),
        Span(type="model", text=thinking),
        Span(type="hint", text="Wait, I can check with Python.```python\n", hint_id="python-check"),
        Span(type="tool_code", text="print(2+2)\n```"),
        Span(type="tool_output", text=TOOL_OUTPUT),
        Span(type="model", text="</think> The answer is \\boxed{4}"),
    ]
    sample = Sample(
        id=trajectory_id,
        messages=[Message(role="user", content="What is 2+2?"), Message(role="assistant", content=spans)],
        meta={
            "problem_id": problem_id,
            "source": source,
            "task_type": "math",
            "tool_calls": 1,
            "response_chars": sum(len(s.text) for s in spans[1:]),
            "generated_tokens": 40,
            "reference": "4",
            "extracted": "4",
        },
    )
    set_review(sample, Review())
    return sample


@pytest.fixture
def dataset_url(tmp_path: Path) -> str:
    url = str(tmp_path / "ds")
    Dataset(
        url=url,
        build={"kind": "hint-rft", "name": "review page test", "filters": [], "sources": [], "settings": {}},
        trajectories=[
            trajectory("t-alpha", "p-alpha", "aime", "Two and two. <script>alert('x')</script>"),
            trajectory("t-beta", "p-beta", "math", "Let me add them up, carefully and at length."),
            trajectory("t-gamma", "p-gamma", "aime", "Adding."),
        ],
    ).create()
    return url


@pytest.fixture
def serve_dataset(dataset_url: str) -> Iterator[Callable[..., ReviewServer]]:
    servers: list[ReviewServer] = []

    def start(runner: ToolRunner | None = None) -> ReviewServer:
        servers.append(serve(dataset_url, runner=runner))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


# The browser fixture is in tests/recipe/conftest.py, the helpers in review_browser.py.


def test_review_in_the_page_edits_and_drops_and_the_card_records_both(
    browser: Any, serve_dataset: Callable[..., ReviewServer], dataset_url: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    driver.get(serve_dataset().url)
    wait_listed(driver, ["t-alpha", "t-beta", "t-gamma"])
    assert text_of(driver, "#list-count") == "Showing 3 of 3 trajectories"
    assert "3 trajectories: 3 kept" in text_of(driver, "#dataset-counts")

    # Each filter narrows the list, and the count says so.
    css(driver, "#filter-problem")[0].send_keys("beta")
    wait_listed(driver, ["t-beta"])
    assert text_of(driver, "#list-count") == "Showing 1 of 3 trajectories"
    css(driver, "#filter-problem")[0].clear()
    Select(css(driver, "#filter-source")[0]).select_by_value("aime")
    wait_listed(driver, ["t-alpha", "t-gamma"])
    css(driver, "#filter-length-max")[0].send_keys("120")
    wait_listed(driver, ["t-gamma"])
    css(driver, "#filter-tools")[0].send_keys("2")
    wait_listed(driver, [])
    for selector in ("#filter-length-max", "#filter-tools"):
        css(driver, selector)[0].clear()
    Select(css(driver, "#filter-source")[0]).select_by_value("")
    wait_listed(driver, ["t-alpha", "t-beta", "t-gamma"])

    # One trajectory: its spans in order, each with its kind's label and colour; only editable ones editable.
    open_trajectory(driver, "t-alpha", len(SPAN_KINDS))
    sections = css(driver, "#spans section.span")
    assert [s.get_attribute("data-kind") for s in sections] == SPAN_KINDS
    labels = [s.find_element(By.CSS_SELECTOR, ".span-label").get_attribute("textContent") for s in sections]
    assert labels == ["prompt", "model", "hint", "tool code", "tool output", "model"]
    colours = {s.get_attribute("data-kind"): s.value_of_css_property("background-color") for s in sections}
    assert len(set(colours.values())) == 5, colours
    assert [bool(s.find_elements(By.TAG_NAME, "textarea")) for s in sections] == [
        False, True, True, True, False, True
    ]
    # Model output is shown as text, never run as markup.
    assert "<script>alert('x')</script>" in span(driver, 1).find_element(By.TAG_NAME, "textarea").get_property("value")
    assert not css(driver, "#spans script")

    new_answer = "</think> So 2+2 is \\boxed{4}, checked by running it."
    replace_text(driver, 5, new_answer)
    wait_for(driver, lambda d: text_of(d, "#staged-count") == "1 staged change", "the edit to be staged")
    assert "staged" in span(driver, 5).get_attribute("class")

    # Drop another: a reason is required.
    open_trajectory(driver, "t-beta", len(SPAN_KINDS))
    css(driver, "#drop-button")[0].click()
    wait_for(driver, lambda d: "needs a reason" in text_of(d, "#message"), "the page to ask for a reason")
    css(driver, "#drop-reason")[0].send_keys("rambles before it answers")
    css(driver, "#drop-button")[0].click()
    wait_for(driver, lambda d: text_of(d, "#staged-count") == "2 staged changes", "the drop to be staged")
    assert text_of(driver, "#staged-status") == "Drop staged: rambles before it answers"

    save(driver, reviewer="ada")
    message = text_of(driver, "#message")
    assert "edit t-alpha span 5 (model)" in message and "drop t-beta: rambles before it answers" in message
    wait_for(driver, lambda d: text_of(d, "#staged-count") == "No staged changes", "the staged changes to clear")
    assert css(driver, "#restore-button"), "a dropped trajectory offers to restore it"
    assert "1 dropped in review" in text_of(driver, "#dataset-counts")

    # On disk: the edit, the drop with its reason, both in edits.jsonl and the card.
    saved = Dataset.load(dataset_url)
    assert saved.get("t-alpha").spans[5].text == new_answer
    assert review_of(saved.get("t-alpha")).edited
    dropped = review_of(saved.get("t-beta"))
    assert (dropped.status, dropped.reason) == ("dropped", "rambles before it answers")
    edits = [json.loads(line) for line in (Path(dataset_url) / EDITS).read_text().splitlines()]
    assert [(e["action"], e["trajectory_id"], e["by"]) for e in edits] == [
        ("edit", "t-alpha", "ada"), ("drop", "t-beta", "ada")
    ]
    card = (Path(dataset_url) / CARD).read_text()
    assert f"+{new_answer}" in card and "-</think> The answer is \\boxed{4}" in card
    assert "rambles before it answers" in card

    # The page's card view shows the edit as recorded.
    css(driver, "#show-card")[0].click()
    wait_for(driver, lambda d: css(d, "#card")[0].is_displayed(), "the card view")
    assert not css(driver, "#trajectories-view")[0].is_displayed()
    shown = text_of(driver, "#card")
    assert f"+{new_answer}" in shown and "rambles before it answers" in shown and "by ada" in shown


def python_runner(code: str) -> str:
    """What the sandbox would print for this code (tests run trusted code in a subprocess)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout


@pytest.mark.parametrize("runner", [None, python_runner], ids=["no-sandbox", "with-runner"])
def test_edited_tool_code_is_run_again_or_flagged_stale(
    browser: Any, serve_dataset: Callable[..., ReviewServer], dataset_url: str, runner: ToolRunner | None
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(serve_dataset(runner).url)
    wait_listed(driver, ["t-alpha", "t-beta", "t-gamma"])
    open_trajectory(driver, "t-gamma", len(SPAN_KINDS))
    replace_text(driver, 3, "print(3+3)\n```")
    save(driver)

    saved = Dataset.load(dataset_url).get("t-gamma")
    output = span(driver, 4).find_element(By.CSS_SELECTOR, ".span-text").get_attribute("textContent")
    if runner is None:
        # Nothing could run the new code: the old output stays, flagged, and the page says so.
        wait_for(driver, lambda d: "stale output: span 4" in text_of(d, "#flags"), "the stale-output flag")
        assert "stale" in span(driver, 4).get_attribute("class").split()
        assert "t-gamma is flagged: stale output: span 4" in text_of(driver, "#message")
        assert output == TOOL_OUTPUT
        assert review_of(saved).flags == ["stale output: span 4"]
    else:
        assert output == "\n```output\n6\n```\n"
        assert "rerun t-gamma span 4 (tool_output)" in text_of(driver, "#message")
        assert not css(driver, "#flags li") and "stale" not in span(driver, 4).get_attribute("class").split()
        assert saved.spans[4].text == "\n```output\n6\n```\n" and review_of(saved).flags == []


# -- the API over plain HTTP -----------------------------------------------------------------


def post(url: str, payload: Any, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url + "api/save", data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": content_type})
    return _call(request)


def get(url: str, path: str) -> tuple[int, dict]:
    return _call(urllib.request.Request(url + path))


def _call(request: urllib.request.Request) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_api_refuses_bad_saves_with_a_message_and_changes_nothing(
    serve_dataset: Callable[..., ReviewServer], dataset_url: str
) -> None:
    url = serve_dataset().url
    before = {name: (Path(dataset_url) / name).read_text() for name in ("trajectories.jsonl", EDITS, CARD)}

    status, body = get(url, "api/trajectories")
    assert status == 200 and [t["id"] for t in body["trajectories"]] == ["t-alpha", "t-beta", "t-gamma"]
    assert "spans" not in body["trajectories"][0]
    status, body = get(url, "api/trajectories/t-alpha")
    assert status == 200 and [s["type"] for s in body["spans"]] == SPAN_KINDS

    # A drop without a reason: 400, and the edit before it in the same save is not applied either.
    status, body = post(url, {"by": "ada", "changes": [
        {"trajectory_id": "t-alpha", "action": "edit", "span": 1, "text": "changed"},
        {"trajectory_id": "t-beta", "action": "drop", "reason": "  "},
    ]})
    assert status == 400 and "needs a reason" in body["error"]
    # A read-only span, a malformed change, a body that is not JSON.
    status, body = post(url, {"changes": [{"trajectory_id": "t-alpha", "action": "edit", "span": 0, "text": "x"}]})
    assert status == 400 and "prompt span and cannot be edited" in body["error"]
    status, body = post(url, {"changes": [{"trajectory_id": "t-alpha", "action": "rewrite"}]})
    assert status == 400 and body["error"].startswith("malformed changes: changes.0.action")
    status, body = _call(urllib.request.Request(url + "api/save", data=b"{not json", method="POST",
                                                headers={"Content-Type": "application/json"}))
    assert status == 400 and "not JSON" in body["error"]

    # Unknown ids: 404 with the id named.
    status, body = get(url, "api/trajectories/no-such-id")
    assert status == 404 and "no trajectory 'no-such-id'" in body["error"]
    status, body = post(url, {"changes": [{"trajectory_id": "no-such-id", "action": "restore"}]})
    assert status == 404 and "no trajectory 'no-such-id'" in body["error"]
    status, body = get(url, "api/nothing-here")
    assert status == 404 and "error" in body

    # Only the page saves: JSON from its own origin.
    status, body = post(url, {"changes": []}, content_type="text/plain")
    assert status == 415 and "application/json" in body["error"]
    request = urllib.request.Request(url + "api/save", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json", "Origin": "http://evil.example"})
    status, body = _call(request)
    assert status == 403 and "evil.example" in body["error"]
    status, body = _call(urllib.request.Request(url + "api/trajectories", headers={"Host": "evil.example"}))
    assert status == 403 and "not 'evil.example'" in body["error"]

    # A body over the limit is refused from its Content-Length, before it is read.
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT_S)
    connection.putrequest("POST", "/api/save")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and "at most" in json.loads(response.read())["error"]
    connection.close()

    assert {name: (Path(dataset_url) / name).read_text() for name in before} == before


def test_page_is_served_with_a_policy_that_runs_only_its_own_script(serve_dataset: Callable[..., ReviewServer]) -> None:
    url = serve_dataset().url
    for path, kind in (("", "text/html"), ("review.js", "text/javascript"), ("review.css", "text/css")):
        with urllib.request.urlopen(url + path, timeout=WAIT_S) as response:
            assert response.headers.get_content_type() == kind
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "innerHTML" not in (Path(__file__).parents[2] / "recipe/review_page/review.js").read_text()
