"""OpenAPI building blocks shared by every app's API: the error body, headers, paging params."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Stable machine code, e.g. `position_not_found`.")
    message = serializers.CharField(help_text="A sentence a person can read.")
    fields = serializers.DictField(required=False, help_text="Offending fields, when validating.")


def errors(*pairs: tuple[int, str]) -> dict[int, OpenApiResponse]:
    """``errors((404, "position_not_found"), (409, "a or b"))`` -> documented error responses."""
    out: dict[int, list[str]] = {}
    for status, codes in pairs:
        out.setdefault(status, []).append(codes)
    return {
        status: OpenApiResponse(
            ErrorSerializer,
            description="`detail` is one of: "
            + ", ".join(f"`{c}`" for c in " or ".join(codes).split(" or ")),
        )
        for status, codes in out.items()
    }


# Errors any endpoint can answer.
COMMON = errors(
    (400, "malformed_json or validation_error or invalid_query or invalid_idempotency_key"),
    (401, "not_authenticated or authentication_failed"),
    (415, "unsupported_media_type"),
)
READ_COMMON = errors((400, "invalid_query"), (401, "not_authenticated or authentication_failed"))


def idempotency_header(required: bool) -> OpenApiParameter:
    return OpenApiParameter(
        "Idempotency-Key",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        required=required,
        description="1-255 printable characters. A replay with the same key and body answers "
        "the stored response (a first 201 replays as 200); the same key with another body "
        "answers 409 `idempotency_signature_mismatch`. Remembered for "
        "VOLBAL_IDEMPOTENCY_TTL_HOURS (default 24).",
    )


PAGING = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="1-1000, default 100."),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="The `next` of the previous page."),
]


def page_of(name: str, item, extra: dict | None = None):
    return inline_serializer(
        name=name,
        fields={
            **(extra or {}),
            **{
                "next": serializers.CharField(
                    allow_null=True, help_text="Cursor of the next page; null at the end."
                ),
            },
            **item,
        },
    )

