"""``python -m lineside`` is the ``lineside`` command."""

from lineside.entrypoints.cli import main

main()
