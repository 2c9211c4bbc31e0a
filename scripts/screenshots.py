"""PNGs of every console page at phone and desktop widths, for docs/console.md.

Runs `lineside demo --stay` (a seeded private server: a factory line, static tokens, owners
claiming), signs in as the admin it prints, and drives Debian's Chromium (LINESIDE_CHROMIUM,
default /usr/bin/chromium) through the console. `make screenshots` runs it.

    .venv/bin/python scripts/screenshots.py [--out docs/console]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = {"phone": (390, 844), "desktop": (1280, 800)}


def started_demo() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    demo = subprocess.Popen(
        [sys.executable, "-m", "lineside", "demo", "--devices", "40", "--json", "--stay"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert demo.stdout is not None
    decoder, text = json.JSONDecoder(), ""
    while True:
        line = demo.stdout.readline()
        if not line:
            raise SystemExit("the demo ended before printing its report")
        text += line
        try:
            return demo, decoder.raw_decode(text)[0]
        except ValueError:
            continue


def pages_of(console: str, page: Page) -> dict[str, str]:
    """Each page to photograph, by file name: the overview, lists, one device, one batch,
    one product, one endpoint."""
    page.goto(f"{console}/devices?state=activated")
    device = page.get_by_test_id("devices").get_by_role("link").first.get_attribute("href")
    page.goto(f"{console}/static-tokens")
    batch = page.get_by_test_id("batches").get_by_role("link").first.get_attribute("href")
    page.goto(f"{console}/webhooks")
    endpoint = page.get_by_test_id("endpoints").get_by_role("link").first.get_attribute("href")
    page.goto(f"{console}/products")
    product = page.get_by_test_id("products").get_by_role("link").first.get_attribute("href")
    return {
        "overview": console,
        "devices": f"{console}/devices",
        "device": str(device),
        "products": f"{console}/products",
        "product": str(product),
        "firmware": f"{console}/firmware",
        "static-tokens": f"{console}/static-tokens",
        "batch": str(batch),
        "factory": f"{console}/factory",
        "audit": f"{console}/audit?type=device.blessed",
        "organization": f"{console}/organization",
        "webhooks": f"{console}/webhooks",
        "endpoint": str(endpoint),
    }


def shoot(out: Path, report: dict[str, Any]) -> list[Path]:
    console = report["console"]
    base = console["url"].split("/console/")[0]
    written = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=os.environ.get("LINESIDE_CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        for width_name, (width, height) in WIDTHS.items():
            context = chromium.new_context(viewport={"width": width, "height": height}, base_url=base)
            page = context.new_page()
            page.goto("/signin?next=/console")
            page.get_by_label("Email").fill(console["email"])
            page.get_by_label("Password").fill(console["password"])
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.wait_for_url("**/console/**")
            for name, url in pages_of(console["url"], page).items():
                page.goto(url)
                path = out / f"{name}-{width_name}.png"
                page.screenshot(path=str(path), full_page=True)
                written.append(path)
            context.close()
        chromium.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs/console"), help="where the PNGs go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    demo, report = started_demo()
    try:
        for path in shoot(args.out, report):
            print(path)
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)


if __name__ == "__main__":
    main()
