"""A small Python client for device firmware and gateways (see docs/device-sdk.md)."""
