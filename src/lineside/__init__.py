"""Lineside: device provisioning from the factory line to the owner's hands."""

__version__ = "0.1.0"
