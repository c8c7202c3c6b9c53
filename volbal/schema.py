"""OpenAPI building blocks shared by every app's API: the error body, headers, paging params."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from drf_spectacular import openapi
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


class AutoSchema(openapi.AutoSchema):
    """One tag per resource (settings' SPECTACULAR_SETTINGS["TAGS"]): the last fixed segment of
    the path that names a tagged resource (``/v1/positions/{id}/orders`` is under orders), else
    the first segment after the version (``/v1/prices``: prices); the health checks under
    health. An ``extend_schema(tags=…)`` still wins."""

    def get_tags(self) -> list[str]:
        tagged = {tag["name"] for tag in settings.SPECTACULAR_SETTINGS.get("TAGS", [])}
        segments = [seg for seg in self.path.strip("/").split("/")
                    if seg and not seg.startswith("{")]
        if not segments or segments[-1] in ("healthz", "readyz"):
            return ["health"]
        for segment in reversed(segments):
            if segment in tagged:
                return [segment]
        return [segments[1] if segments[0] == "v1" and len(segments) > 1 else segments[0]]


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


class ListLengthExtension(OpenApiSerializerFieldExtension):
    """A nested list (``Child(many=True, min_length=…, max_length=…)``) documents its bounds as
    ``minItems``/``maxItems``."""

    target_class = "rest_framework.serializers.ListSerializer"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        if getattr(field, "min_length", None) is not None:
            schema["minItems"] = field.min_length
        if getattr(field, "max_length", None) is not None:
            schema["maxItems"] = field.max_length
        return schema


class OneOrManyExtension(OpenApiSerializerExtension):
    """A body that is one object or a list of them (:class:`OneOrMany`): ``oneOf`` the object
    and an array of it with its bounds."""

    target_class = "volbal.schema.OneOrMany"
    match_subclasses = True

    def get_name(self, auto_schema, direction):
        return None

    def map_serializer(self, auto_schema, direction):
        target = self.target
        item = auto_schema.resolve_serializer(target.item, direction).ref
        return {"oneOf": [item, {"type": "array", "items": item, "minItems": 1,
                                 "maxItems": target.max_items}]}


class OneOfExtension(OpenApiSerializerExtension):
    """A body that is exactly one of several objects (:func:`one_of`): ``oneOf`` their
    components (each refuses unknown fields, so no body matches two)."""

    target_class = "volbal.schema.OneOf"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        parts = [auto_schema.resolve_serializer(part, direction).ref
                 for part in self.target.parts]
        return {"oneOf": parts, "description": self.target.description}


class OneOf(serializers.Serializer):
    """For the schema only: a body that is exactly one of ``parts``."""

    parts: tuple[type[serializers.Serializer], ...]
    description: str


def one_of(name: str, *parts: type[serializers.Serializer], help_text: str) -> type[OneOf]:
    return type(name, (OneOf,), {"parts": parts, "description": help_text})


class OneOrMany(serializers.Serializer):
    """For the schema only: a body that is one ``item`` object or a list of 1 to ``max_items``
    of them."""

    item: type[serializers.Serializer]
    max_items: int


def one_or_many(item: type[serializers.Serializer], max_items: int) -> type[OneOrMany]:
    return type(f"{item.__name__.removesuffix('Serializer')}OneOrMany", (OneOrMany,),
                {"item": item, "max_items": max_items})


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


def document_replays(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation that takes an ``Idempotency-Key``
    documents the ``Idempotent-Replayed: true`` header of its 200 (a replay answers 200 with the
    stored body, whatever the first status was)."""
    header = {
        "description": "`true` when this answer is the stored response of an earlier request "
        "with the same Idempotency-Key and body (nothing was done again); absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            names = {p.get("name") for p in operation.get("parameters", [])}
            ok = operation.get("responses", {}).get("200")
            if "Idempotency-Key" in names and ok is not None:
                ok.setdefault("headers", {})["Idempotent-Replayed"] = header
    return result
