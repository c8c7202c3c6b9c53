"""Signed webhooks from the event log (docs/webhooks.md): endpoints, deliveries and their
attempts; the event log is the outbox."""
