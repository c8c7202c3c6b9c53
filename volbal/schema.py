"""OpenAPI building blocks shared by every app's API: the error body, headers, paging params."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.extensions import (
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers


class StrictSerializerExtension(OpenApiSerializerExtension):
    """A StrictSerializer refuses unknown fields: say so (``additionalProperties: false``)."""

    target_class = "volbal.api.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


class NumberExtension(OpenApiSerializerFieldExtension):
    """volbal.fields.Number: its exclusive bounds and the grid its decimal places allow, so a
    client (or a fuzzer) knows exactly which numbers are accepted."""

    target_class = "volbal.fields.Number"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        schema.pop("format", None)  # "double" would promise binary floats; these are decimals
        schema["multipleOf"] = _json_number(Decimal(1).scaleb(-field.decimal_places))
        if field.gt is not None:
            schema.update(minimum=_json_number(field.gt), exclusiveMinimum=True)
        if field.lt is not None:
            schema.update(maximum=_json_number(field.lt), exclusiveMaximum=True)
        return schema


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


# Errors any write endpoint can answer, and any read endpoint.
_WRITE = (
    (400, "malformed_json or validation_error or invalid_query or invalid_idempotency_key"),
    (401, "not_authenticated or authentication_failed"),
    (415, "unsupported_media_type"),
)
_READ = ((400, "invalid_query"), (401, "not_authenticated or authentication_failed"))


def write_errors(*pairs: tuple[int, str]) -> dict[int, OpenApiResponse]:
    """The errors of a write endpoint: its own codes merged with those every write can answer
    (a status named twice documents every code of both, never only the last)."""
    return errors(*_WRITE, *pairs)


def read_errors(*pairs: tuple[int, str]) -> dict[int, OpenApiResponse]:
    return errors(*_READ, *pairs)


def idempotency_header(required: bool) -> OpenApiParameter:
    return OpenApiParameter(
        "Idempotency-Key",
        # orders.idempotency.key_problem: 1-255 printable ASCII characters.
        {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]{1,255}$"},
        OpenApiParameter.HEADER,
        required=required,
        description="1-255 printable characters. A replay with the same key and body answers "
        "the stored response (a first 201 replays as 200); the same key with another body "
        "answers 409 `idempotency_signature_mismatch`. Remembered for "
        "VOLBAL_IDEMPOTENCY_TTL_HOURS (default 24).",
    )


PAGING = [
    OpenApiParameter(
        "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, description="Default 100."
    ),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="The `next` of the previous page."),
]


def page_of(name: str, item, extra: dict | None = None):
    """One page object ``{..., "next", "<items>": [...]}``. Marked ``many=False``: on a ``list``
    action drf-spectacular would otherwise document an array of pages."""
    page = inline_serializer(
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
    return extend_schema_serializer(many=False)(page)



REQUEST_LINE_LIMIT = 4094  # gunicorn.conf.py limit_request_line


def document_server_limits(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation can also be answered 414 by the
    HTTP server (gunicorn) when its request line is too long, before the API sees it."""
    too_long = {
        "description": f"The request line (method, path and query) is longer than "
        f"{REQUEST_LINE_LIMIT} bytes; gunicorn answers with a short HTML page.",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("414", too_long)
    return result
