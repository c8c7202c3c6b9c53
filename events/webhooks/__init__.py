"""Signed webhooks from the event log (issue 15 item 3): endpoints, deliveries and their attempts;
the event log is the outbox."""
