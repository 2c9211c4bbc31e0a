"""Run a coroutine to completion from synchronous test code.

``asyncio.run`` refuses to start while the calling thread already runs an event loop, and
Playwright's synchronous API (the browser tests, session-scoped) keeps one running in the
main thread. A fresh thread always starts clean.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-loop") as pool:
        return pool.submit(asyncio.run, coroutine).result()
