"""Driving the dataset review page in a real browser: the waits and clicks its tests share.

The browser itself is the `browser` fixture (tests/recipe/conftest.py): Debian's chromium,
headless, through its chromedriver. Waits are explicit (on what the page shows), never sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 15  # generous: a loaded CI machine; a passing wait returns as soon as its condition holds


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    """Wait until condition(driver) is truthy; the failure says what was awaited."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException]).until(
        condition, message=f"timed out waiting for {what}"
    )


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def text_of(driver: Any, selector: str) -> str:
    found = css(driver, selector)
    return found[0].get_attribute("textContent") if found else ""


def listed_ids(driver: Any) -> list[str]:
    return [row.get_attribute("data-id") for row in css(driver, "#trajectory-list tbody tr")]


def wait_listed(driver: Any, ids: list[str]) -> None:
    wait_for(driver, lambda d: listed_ids(d) == ids, f"the list to show {ids}")


def open_trajectory(driver: Any, trajectory_id: str, spans: int | None = None) -> None:
    """Click a trajectory in the list; wait until it shows (with `spans` spans, when given)."""
    click(driver, css(driver, f'#trajectory-list tr[data-id="{trajectory_id}"]')[0])

    def shown(d: Any) -> bool:
        count = len(css(d, "#spans section.span"))
        return text_of(d, "#trajectory-id") == trajectory_id and count > 0 and spans in (None, count)

    wait_for(driver, shown, f"{trajectory_id} to open")


def span_index_of(driver: Any, kind: str, last: bool = False) -> int:
    """The index of the first (or last) span of a kind in the open trajectory."""
    indexes = [int(s.get_attribute("data-index")) for s in css(driver, f'#spans section.span[data-kind="{kind}"]')]
    return indexes[-1] if last else indexes[0]


def click(driver: Any, element: Any) -> None:
    """Click as a person does: scrolled to the middle first, clear of the sticky save bar."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def span(driver: Any, index: int) -> Any:
    return css(driver, f'#spans section.span[data-index="{index}"]')[0]


def replace_text(driver: Any, index: int, text: str) -> None:
    """Type a span's new text as a person does: select all of it, then type over it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    area = span(driver, index).find_element(By.TAG_NAME, "textarea")
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(text)
    wait_for(driver, lambda d: span(d, index).find_element(By.TAG_NAME, "textarea").get_property("value") == text,
             f"span {index} to hold the typed text")


def save(driver: Any, reviewer: str = "") -> None:
    if reviewer:
        css(driver, "#reviewer")[0].send_keys(reviewer)
    click(driver, css(driver, "#save-button")[0])
    wait_for(driver, lambda d: text_of(d, "#message").startswith("Saved"), "the save to finish")
