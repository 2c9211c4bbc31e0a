"""The ``lineside`` command line.

Commands here act as the local operator, straight on the configured database through the
services (later, ``lineside factory`` talks to a server over HTTP instead).
"""

from __future__ import annotations

from lineside.entrypoints.cli.main import main

__all__ = ["main"]
