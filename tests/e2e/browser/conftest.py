"""Browser tests: Debian's Chromium, driven by Playwright, on a phone-sized screen, against
the real ``lineside serve`` process of ``tests/e2e``.

Chromium is found at LINESIDE_CHROMIUM (default /usr/bin/chromium). Without it these tests
skip with the reason, unless LINESIDE_REQUIRE_BROWSER=1 (set by .ci/run) turns that skip
into a failure. Playwright never downloads a browser here: it drives the one installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from tests.e2e.browser.owners import BoxedDevice, Person, boxed_device, new_person
from tests.support.api import Tenant

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = ViewportSize(width=390, height=844)
DESKTOP = ViewportSize(width=1280, height=800)
TIMEOUT_MS = 15_000  # room for argon2 on a busy CI machine; waits end as soon as the page is ready


def _browser_unavailable(reason: str) -> None:
    if os.environ.get("LINESIDE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"Chromium is required here (LINESIDE_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    path = os.environ.get("LINESIDE_CHROMIUM", DEFAULT_CHROMIUM)
    if not os.access(path, os.X_OK):
        _browser_unavailable(
            f"Chromium not found at {path} (apt-get install chromium, or point LINESIDE_CHROMIUM at it)"
        )
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def make_phone(chromium: Browser, server_url: str) -> Iterator[Callable[[], Page]]:
    """Fresh phones: no cookies, a touch screen of 390x844 CSS pixels."""
    contexts = []

    def make() -> Page:
        context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True, base_url=server_url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def make_desktop(chromium: Browser, server_url: str) -> Iterator[Callable[[], Page]]:
    """Fresh desktop browsers: no cookies, a 1280x800 window with a mouse."""
    contexts = []

    def make() -> Page:
        context = chromium.new_context(viewport=DESKTOP, base_url=server_url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(params=["phone", "desktop"])
def browser(
    request: pytest.FixtureRequest, make_phone: Callable[[], Page], make_desktop: Callable[[], Page]
) -> Page:
    """A page at a phone's width (390 px) and, as a second run of the test, a desktop's."""
    return make_phone() if request.param == "phone" else make_desktop()


@pytest.fixture
def phone(make_phone: Callable[[], Page]) -> Page:
    return make_phone()


@pytest.fixture
def boxed(tenant: Tenant) -> BoxedDevice:
    return boxed_device(tenant)


@pytest.fixture
def make_person(http: httpx.Client) -> Callable[[], Person]:
    return lambda: new_person(http)
