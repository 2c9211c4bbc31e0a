"""Technology-named implementations of the service ports."""
