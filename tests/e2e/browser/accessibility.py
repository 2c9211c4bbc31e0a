"""axe-core (the engine of Lighthouse's and Deque's accessibility checks) run on a page."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

SERIOUS = ("serious", "critical")


def serious_violations(page: Page) -> list[str]:
    """The serious and critical WCAG violations axe-core finds on the page, one line each
    (rule, impact, the elements), so a failing assertion says what to fix."""
    results = Axe().run(page, options={"resultTypes": ["violations"]})
    violations: list[dict[str, Any]] = results.response["violations"]
    return [
        f"{violation['id']} ({violation['impact']}): "
        + ", ".join(" ".join(node["target"]) for node in violation["nodes"])
        for violation in violations
        if violation["impact"] in SERIOUS
    ]
