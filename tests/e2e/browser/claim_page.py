"""What a person does on the claim page, in the words its buttons and labels use."""

from __future__ import annotations

from playwright.sync_api import Locator, Page


def main(page: Page) -> Locator:
    return page.get_by_role("main")


def press(page: Page, control: Locator) -> None:
    """Tap on a touch screen, click with a mouse."""
    if page.evaluate("navigator.maxTouchPoints > 0"):
        control.tap()
    else:
        control.click()


def sign_up(page: Page, email: str, password: str) -> None:
    form = page.locator("form", has=page.get_by_role("button", name="Create account"))
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(password)
    press(page, form.get_by_role("button", name="Create account"))


def sign_in(page: Page, email: str, password: str) -> None:
    form = page.locator("form", has=page.get_by_role("button", name="Sign in", exact=True))
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(password)
    press(page, form.get_by_role("button", name="Sign in"))


def claim_button(page: Page) -> Locator:
    return page.get_by_role("button", name="Add to my account")


def fits_the_phone(page: Page) -> bool:
    """No sideways scrolling: the page is no wider than the phone's screen."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))
