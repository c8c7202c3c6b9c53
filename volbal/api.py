"""Shared API plumbing: the error format, strict serializers, keyset pagination."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import difflib
import json
import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponse
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from volbal import clock
from volbal.errors import ApiError, DomainError
from volbal.renderers import dumps_exact

log = logging.getLogger("volbal.api")

_CODES = {
    exceptions.ParseError: ("malformed_json", None),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", None),
    exceptions.NotAuthenticated: (
        "not_authenticated",
        "Authentication credentials were not provided.",
    ),
    exceptions.AuthenticationFailed: ("authentication_failed", None),
    exceptions.PermissionDenied: ("permission_denied", None),
    exceptions.NotFound: ("not_found", None),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.NotAcceptable: ("not_acceptable", None),
    exceptions.Throttled: ("throttled", None),
}


def idempotency_key_required(request, message: str) -> str:
    """The request's Idempotency-Key, or 400 ``missing_idempotency_key`` with ``message``
    (saying why the write must be safe to retry). The middleware (orders.middleware) has made
    the request replayable when there is one."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise ApiError("missing_idempotency_key", message)
    return key


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    body = {"detail": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def _flatten(detail) -> dict | list | str:
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        items = [_flatten(v) for v in detail]
        if all(isinstance(i, str) for i in items):
            return " ".join(items)
        return items
    return str(detail)


def _first_message(fields) -> str:
    if isinstance(fields, dict):
        for key, val in fields.items():
            inner = _first_message(val)
            return inner if key == "non_field_errors" else f"{key}: {inner}"
    if isinstance(fields, list) and fields:
        return _first_message(fields[0])
    return str(fields)


class MissingBeforeNotAllowed:
    # For a viewset with a detail route: a method that route does not take, on an object that
    # does not exist (or is another owner's), answers the 404 a GET there would
    # (``order_not_found``, ``position_not_found``, ...), not 405. The method is refused
    # either way; the 404 is the truer answer, and the one documented on every operation
    # under the object: a client that fills an empty id into ``/v1/positions/{id}/orders``
    # sends ``POST /v1/positions/orders``, the detail route of a position named "orders". The
    # object's own ``retrieve`` looks it up (the same owner scoping, the same error); any
    # other refusal of that lookup leaves the 405.
    # (A comment, not a docstring: drf-spectacular describes an operation with the first
    # docstring of its view's bases, and this mixin comes first.)

    def http_method_not_allowed(self, request, *args, **kwargs):
        retrieve = getattr(self, "retrieve", None)
        if "pk" in kwargs and retrieve is not None:
            try:
                retrieve(request, pk=kwargs["pk"])
            except DomainError as exc:
                if exc.status == 404:
                    raise
            except (Http404, exceptions.NotFound):
                raise
            except exceptions.APIException:
                pass
        return super().http_method_not_allowed(request, *args, **kwargs)


def exception_handler(exc, context):
    """Render every error as ``{"detail": code, "message": sentence, "fields"?: {...}}``."""
    if isinstance(exc, DomainError):
        exc = ApiError(exc.code, exc.message, status=exc.status, fields=exc.fields)
    if isinstance(exc, Http404):
        exc = ApiError("not_found", "Not found.", status=404)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, ApiError):
        body = error_body(exc.code, exc.message, exc.fields)
    elif isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if not isinstance(fields, dict):
            fields = {"non_field_errors": fields}
        body = error_body("validation_error", f"Invalid input. {_first_message(fields)}", fields)
    elif isinstance(exc, exceptions.APIException):
        code, message = next(
            ((c, m) for cls, (c, m) in _CODES.items() if isinstance(exc, cls)),
            (exc.default_code, None),
        )
        body = error_body(code, message or str(exc.detail))
    else:
        return None

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)


def json_response(body: dict, status: int) -> HttpResponse:
    """A plain Django JSON response rendered exactly like the API's (Decimals as numbers)."""
    return HttpResponse(dumps_exact(body), status=status, content_type="application/json")


# The errors Django itself answers (its handlers, and the HTML pages it renders in DEBUG that
# volbal.middleware.JsonErrorsMiddleware turns into JSON): status -> (code, sentence).
DJANGO_ERRORS = {
    400: ("bad_request", "The request could not be understood."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You may not do that."),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "This method is not allowed here."),
    500: ("server_error", "The server failed; nothing was changed."),
}


def django_error_response(status: int) -> HttpResponse:
    """The API's JSON error for a status Django answers; an unlisted one takes the code of
    400 or 500."""
    code, message = DJANGO_ERRORS.get(status, DJANGO_ERRORS[500 if status >= 500 else 400])
    return json_response(error_body(code, message), status)


def json_error_view(status: int):
    def view(request, exception=None):
        return django_error_response(status)

    return view


# Names a user may reasonably send for a field that has another name here: another endpoint's
# name for the same concept, or an earlier name. {sent: meant}; used only when ``meant`` is a
# field of the serializer at hand.
FIELD_ALIASES = {
    "qty": "filled_qty",  # a fill's quantity is filled_qty (the seed's fill body)
    "quantity": "qty",
    "withholding_rate": "withholding_tax_rate",
    "tax_rate": "withholding_tax_rate",
    "symbol": "ticker",
}


def did_you_mean(name: str, known) -> str | None:
    """The known field a user probably meant by ``name``: an alias, the same name in another
    case or spelling, a name that contains it (``qty`` -> ``filled_qty``), or a close
    spelling; None when nothing is close."""
    known = list(known)
    if FIELD_ALIASES.get(name) in known:
        return FIELD_ALIASES[name]
    folded = name.strip().lower().replace("-", "_").replace(" ", "_")
    if folded in known:
        return folded
    containing = [k for k in known if len(folded) >= 3 and (k.endswith("_" + folded)
                                                             or k.startswith(folded + "_"))]
    if len(containing) == 1:
        return containing[0]
    close = difflib.get_close_matches(folded, known, n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_field_message(name: str, known) -> str:
    meant = did_you_mean(name, known)
    return f"Unknown field; did you mean {meant}?" if meant else "Unknown field."


MAX_UNKNOWN_FIELDS_NAMED = 20


class TextField(serializers.CharField):
    """A text field that takes only a JSON string: DRF's ``CharField`` turns the number 5 into
    "5", which makes a client's wrong type look accepted."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error and not a silent no-op; the
    error names the field the user probably meant (:func:`did_you_mean`)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                # Named (with a guess at the field meant) up to a bound: a body of 100,000
                # unknown keys must cost no more to refuse than one of twenty.
                named = {name: [unknown_field_message(name, self.fields)]
                         for name in unknown[:MAX_UNKNOWN_FIELDS_NAMED]}
                more = len(unknown) - MAX_UNKNOWN_FIELDS_NAMED
                if more > 0:
                    named[api_settings.NON_FIELD_ERRORS_KEY] = [
                        f"{more} more unknown fields are not listed."]
                raise serializers.ValidationError(named)
        return super().to_internal_value(data)


# --- keyset pagination: ?limit=1..1000 (default 100) & opaque ?cursor= ---

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _invalid_query(message: str, field: str) -> ApiError:
    return ApiError("invalid_query", message, status=400, fields={field: message})


# The last instant a datetime can hold: what a time beyond it (the end of 9999-12-31, or
# 9999-12-31T23:00-05:00) is clamped to, so a caller that takes "a later until is now" can say so.
LAST_INSTANT = dt.datetime.max.replace(tzinfo=dt.UTC)


def time_param(request, name: str, *, end_of_day: bool) -> dt.datetime | None:
    """A query parameter naming an instant: an ISO 8601 time with its UTC offset, or a date
    (the start of that day in the trading time zone, or with ``end_of_day`` the start of the
    next: the day included). None when absent; 400 ``invalid_query`` naming it otherwise."""
    refuse_empty(request.query_params, (name,))
    raw = request.query_params.get(name)
    if raw is None:
        return None
    message = (f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 time with its UTC offset "
               "(2026-01-02T16:00:00Z).")
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            if end_of_day and day == dt.date.max:
                return LAST_INSTANT  # the end of the last day there is: later than any now
            day += dt.timedelta(days=1 if end_of_day else 0)
            return dt.datetime.combine(day, dt.time.min, tzinfo=clock.trading_tz())
        moment = dt.datetime.fromisoformat(raw)
    except (ValueError, OverflowError):
        raise _invalid_query(message, name) from None
    if moment.tzinfo is None:
        raise _invalid_query(message, name)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        if moment.year == dt.MAXYEAR:  # past the last instant in UTC: later than any now
            return LAST_INSTANT
        raise _invalid_query(message, name) from None


def refuse_empty(query, names) -> None:
    """An empty query value (``?limit=``, ``?since=``) is an invalid value, not an absent one:
    400 naming every such parameter, so a client's unset variable is not silently ignored."""
    empty = [name for name in names if "" in query.getlist(name)]
    if empty:
        message = "Must not be empty; leave the parameter out instead."
        raise ApiError("invalid_query", f"Invalid query parameter: {empty[0]}: {message}",
                       status=400, fields={name: message for name in empty})


def page_limit(request) -> int:
    refuse_empty(request.query_params, ("limit", "cursor"))
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise _invalid_query("limit must be a whole number from 1 to 1000.", "limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _invalid_query("limit must be a whole number from 1 to 1000.", "limit")
    return limit


def encode_cursor(values: list) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(request, arity: int) -> list | None:
    refuse_empty(request.query_params, ("cursor",))
    raw = request.query_params.get("cursor")
    if raw is None:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise _invalid_query("cursor is not one this API issued.", "cursor") from None
    if (
        not isinstance(values, list)
        or len(values) != arity
        or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values)
        or any(isinstance(v, str) and "\x00" in v for v in values)
    ):
        raise _invalid_query("cursor is not one this API issued.", "cursor")
    return values


def validate_filters(filterset) -> None:
    """A django-filter FilterSet with bad (or empty) values answers 400 invalid_query, naming
    the fields."""
    refuse_empty(filterset.data, filterset.filters)
    if not filterset.is_valid():
        fields = {k: " ".join(v) for k, v in filterset.errors.items()}
        raise ApiError(
            "invalid_query",
            f"Invalid query parameter: {_first_message(fields)}",
            status=400,
            fields=fields,
        )


def keyset_page(request, queryset, fields: tuple[str, ...] = ("created_at", "id")):
    """One page of ``queryset`` ordered by ``fields`` (ascending, unique together).

    Returns ``(items, next_cursor)``; the cursor is opaque to clients."""
    limit = page_limit(request)
    after = decode_cursor(request, len(fields))
    qs = queryset.order_by(*fields)
    if after is not None:
        values = []
        for name, raw in zip(fields, after, strict=True):
            if name.endswith("_at"):
                try:
                    # Issued cursors carry aware times; in UTC, PostgreSQL takes any offset.
                    raw = dt.datetime.fromisoformat(str(raw))
                    if raw.tzinfo is None:
                        raise ValueError("naive time")
                    raw = raw.astimezone(dt.UTC)
                except (ValueError, OverflowError):
                    raise _invalid_query("cursor is not one this API issued.", "cursor") from None
            values.append(raw)
        condition = Q()
        for i, name in enumerate(fields):
            step = Q(**{f"{name}__gt": values[i]})
            for j in range(i):
                step &= Q(**{fields[j]: values[j]})
            condition |= step
        try:
            qs = qs.filter(condition)
            items = list(qs[: limit + 1])
        except (ValueError, TypeError):
            raise _invalid_query("cursor is not one this API issued.", "cursor") from None
    else:
        items = list(qs[: limit + 1])
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor(
            [
                getattr(last, f).isoformat() if f.endswith("_at") else getattr(last, f)
                for f in fields
            ]
        )
    return items, next_cursor
