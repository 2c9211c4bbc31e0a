"""Use cases: the only API that entrypoints call. Each runs in one unit of work."""
