"""Webhook delivery over HTTP: signing, the target address guard, the httpx sender."""

from lineside.adapters.webhooks.sender import HttpxWebhookSender

__all__ = ["HttpxWebhookSender"]
