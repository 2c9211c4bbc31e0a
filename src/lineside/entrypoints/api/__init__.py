"""The HTTP API: FastAPI routes that parse, call a service, and map errors to problem+json."""
