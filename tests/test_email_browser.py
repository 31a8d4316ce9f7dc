"""Rendered emails in a real headless browser (Debian's chromium) at phone and desktop widths.

Screenshots are kept in test-artifacts/<test name>/ for people to look at.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from nurture.domain import ScarType
from tests.test_content import CLIENT, compose, runtime, situation

pytestmark = pytest.mark.browser

#: A first name with no break opportunity: the widest thing a client can bring.
UNBROKEN = dataclasses.replace(CLIENT, name="Wolfeschlegelsteinhausenbergerdorff Smith")
EMAILS = [
    ("welcome", (ScarType.ATROPHIC, ScarType.PIH, ScarType.HYPERTROPHIC), 5, 1),
    ("what_to_expect", (ScarType.HYPERTROPHIC,), 5, 1),
    ("booking_confirmed", (ScarType.PIH,), 5, 1),
    ("aftercare", (ScarType.PIH, ScarType.HYPERTROPHIC), 5, 3),
    ("session_cancelled", (ScarType.ATROPHIC,), 5, 2),
]
WIDTHS = [320, 375, 1024]


def rendered_html(step: str, scars: tuple[ScarType, ...], planned: int, number: int) -> str:
    """The HTML part of ``step`` as the client would receive it."""
    composer = runtime().composer
    course, session_number = situation(composer, step, scars, planned, number)
    rendered, _ = compose(composer, step, course, session_number, UNBROKEN)
    return rendered.html


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("step", "scars", "planned", "number"), EMAILS, ids=[e[0] for e in EMAILS])
def test_email_fits_the_screen_without_sideways_scrolling(
    browser: Any,
    artifacts: Path,
    step: str,
    scars: tuple[ScarType, ...],
    planned: int,
    number: int,
    width: int,
) -> None:
    """The email never scrolls sideways at this width; a screenshot is kept."""
    page = browser.new_page(viewport={"width": width, "height": 800})
    try:
        page.set_content(rendered_html(step, scars, planned, number), wait_until="load")
        page.screenshot(path=str(artifacts / f"{step}-{width}.png"), full_page=True)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        body_width = page.evaluate("document.body.scrollWidth")
    finally:
        page.close()
    assert scroll_width <= width
    assert body_width <= width


@pytest.mark.parametrize("width", [320, 1024])
def test_column_is_full_width_on_phones_and_capped_on_desktop(browser: Any, width: int) -> None:
    """The single column fills a phone screen and stops at 600 px on a desktop."""
    page = browser.new_page(viewport={"width": width, "height": 800})
    try:
        page.set_content(rendered_html(*EMAILS[0]), wait_until="load")
        column = page.evaluate("document.querySelector('table.container').offsetWidth")
        text_size = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('td.content p')).fontSize)"
        )
    finally:
        page.close()
    assert column == min(width, 600)
    assert text_size >= 16
