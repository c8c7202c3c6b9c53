"""Output serializers whose ``to_representation`` costs only the fields' own conversions.

REST framework's ``Serializer.to_representation`` reads ``self.fields``, and every new serializer
instance builds those by deep-copying each declared field and binding the copy (``get_fields``):
for a position's 32 fields that copy cost several times the position's own read from the
database, on every ``GET /v1/positions/{id}`` (bench/orders_load.py's reads). A
:class:`CompiledRepresentation` serializer does that once per class: its fields are copied and
bound once, and each instance's ``to_representation`` runs REST framework's loop over them (the
same attribute, the same ``None`` rule, the same field's ``to_representation``), so the body is
the same, byte for byte (volbal/tests/test_representation.py compares the two).

What may be shared between instances is checked when the plan is built: only fields whose output
depends on nothing but the value (no context, no parent but a method field's, which is called on
the instance itself), read from a plain attribute or, for a method field, the object itself.
Anything else is refused (``TypeError``) rather than served from a shared copy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django.conf import settings
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.fields import SkipField, get_attribute
from rest_framework.settings import api_settings

from volbal.fields import DecimalOut

# Fields whose to_representation reads only its value and the field's own constant options.
_VALUE_ONLY = (serializers.CharField, serializers.IntegerField, serializers.BooleanField,
               serializers.ChoiceField, serializers.DateTimeField, serializers.DecimalField,
               DecimalOut)


def _value_only(field) -> bool:
    return isinstance(field, _VALUE_ONLY) and not isinstance(
        field, (serializers.Serializer, serializers.ListSerializer, serializers.RelatedField,
                serializers.ManyRelatedField))


# The converter of a REST framework DateTimeField with the settings' format and the current
# time zone (no ``format`` nor ``timezone`` of its own): see CompiledRepresentation._time.
_TIME = object()


def _converter(field):
    """The field's ``to_representation``; where that is REST framework's ``str(value)`` or
    ``int(value)`` the builtin itself, ``None`` for :class:`volbal.fields.DecimalOut`'s
    (the value as it is) and ``_TIME`` for a plain DateTimeField's: the same result without a
    call through the field."""
    method = type(field).to_representation
    if method is DecimalOut.to_representation:
        return None
    if (method is serializers.DateTimeField.to_representation
            and type(field).enforce_timezone is serializers.DateTimeField.enforce_timezone
            and type(field).default_timezone is serializers.DateTimeField.default_timezone
            and not hasattr(field, "format") and not hasattr(field, "timezone")):
        return _TIME
    if method is serializers.CharField.to_representation:
        return str
    if method is serializers.IntegerField.to_representation:
        return int
    return field.to_representation


class CompiledRepresentation:
    # Mixin for an output ``serializers.Serializer`` (put it first in the bases).
    # (A comment, not a docstring: drf-spectacular describes a serializer with the first
    # docstring of its bases, and a mixin put first would describe the API's schemas.)

    # per class: (output name, attribute, converter or None, field or None, method name or None)
    _compiled_plan: tuple | None = None
    _compiled_template = None  # the instance the plan was read from (represent)

    @classmethod
    def represent(cls, instance) -> dict:
        """What ``cls(instance).data`` holds (the same keys and values, in the same order),
        without a serializer instance per call: REST framework's ``__init__`` (every option of
        a Field) and ``.data``'s copy cost a quarter of the body itself. The loop runs on the
        class's one instance, built with its plan; for the class's method fields that is the
        same as a fresh one as long as they read only their argument (no ``context``, no
        ``instance``: none is given here either)."""
        cls._plan()
        return cls.__dict__["_compiled_template"].to_representation(instance)

    @classmethod
    def _plan(cls) -> tuple:
        plan = cls.__dict__.get("_compiled_plan")
        if plan is None:
            template = cls()
            entries = []
            for field in template._readable_fields:
                if isinstance(field, serializers.SerializerMethodField):
                    entries.append((field.field_name, None, None, None, field.method_name))
                    continue
                if not _value_only(field) or len(field.source_attrs) != 1:
                    raise TypeError(f"{cls.__name__}.{field.field_name}: "
                                    f"{type(field).__name__} (source {field.source!r}) cannot be "
                                    "compiled; serialize it with REST framework's loop")
                entries.append((field.field_name, field.source_attrs[0], _converter(field),
                                field, None))
            plan = tuple(entries)
            cls._compiled_template = template
            cls._compiled_plan = plan
        return plan

    def to_representation(self, instance):
        if isinstance(instance, Mapping):  # REST framework reads keys: its own loop
            return super().to_representation(instance)
        ret = {}
        zone = None  # the current time zone, looked up once per instance, not once per time
        for name, attr, convert, field, method in self._plan():
            if method is not None:
                ret[name] = getattr(self, method)(instance)
                continue
            try:
                attribute = getattr(instance, attr)
            except AttributeError:  # REST framework's rules for a missing attribute
                try:
                    attribute = field.get_attribute(instance)
                except SkipField:
                    continue
            if callable(attribute):  # a method: REST framework calls it (or says why not)
                attribute = get_attribute(instance, [attr])
            if attribute is None:
                ret[name] = None
            elif convert is None:
                ret[name] = attribute
            elif convert is _TIME:
                if zone is None:
                    zone = timezone.get_current_timezone() if settings.USE_TZ else False
                ret[name] = _time(field, attribute, zone)
            else:
                ret[name] = convert(attribute)
        return ret


def _time(field, value, zone):
    """``field.to_representation(value)`` of a plain DateTimeField (``_TIME``) with the current
    time zone ``zone`` (``False`` without USE_TZ) already looked up: REST framework's own steps
    for an aware datetime in ISO 8601 (``enforce_timezone``'s ``astimezone``, ``isoformat``, UTC
    as ``Z``); any other case (no zone, a naive or falsy value, a text, another format, an
    overflow) goes through the field itself, which answers or fails as it always does."""
    if (zone is False or not isinstance(value, dt.datetime) or timezone.is_naive(value)
            or api_settings.DATETIME_FORMAT is None
            or api_settings.DATETIME_FORMAT.lower() != ISO_8601):
        return field.to_representation(value)
    try:
        text = value.astimezone(zone).isoformat()
    except OverflowError:
        return field.to_representation(value)
    return text[:-6] + "Z" if text.endswith("+00:00") else text
