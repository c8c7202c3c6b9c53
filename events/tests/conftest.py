"""Fast password hashing for this app's tests: the default PBKDF2 costs ~0.4 s per user and
every test makes one or two (the ``user`` and ``other_user`` fixtures of the root conftest)."""

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
