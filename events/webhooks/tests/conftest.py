"""Shared by the webhooks' tests."""

import pytest


@pytest.fixture
def private_receivers(settings):
    """Deliveries may go to private addresses: the tests' receivers listen on 127.0.0.1."""
    settings.VOLBAL_WEBHOOKS_ALLOW_PRIVATE = True
