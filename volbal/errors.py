"""The one error type every layer raises, and the DRF exception handler that renders it.

Every error body is JSON: ``{"detail": <machine code>, "message": <sentence>, "fields": {...}}``.
"""

from __future__ import annotations

from rest_framework import status as http
from rest_framework.exceptions import APIException


class ApiError(APIException):
    """A refusal with a stable machine code, a readable sentence and an HTTP status."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = http.HTTP_400_BAD_REQUEST,
        fields: dict | None = None,
    ):
        super().__init__(detail=code, code=code)
        self.status_code = status
        self.code = code
        self.message = message
        self.fields = fields or {}


class DomainError(Exception):
    """Raised by services; the API maps it to :class:`ApiError` with the same code."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = http.HTTP_409_CONFLICT,
        fields: dict | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields or {}
