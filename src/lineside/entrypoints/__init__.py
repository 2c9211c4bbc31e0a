"""Thin doors into the services: the HTTP API, the CLI, (later) the worker and console."""
