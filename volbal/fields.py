"""Strict JSON input fields: a number must be a JSON number, a boolean a JSON boolean."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from volbal.columns import SQLITE_DIGITS, capacity, exactly_stored, out_of_range  # noqa: F401


class Number(serializers.DecimalField):
    """A decimal given as a JSON number (not a string, not a boolean), kept exact.

    ``min_value``/``max_value`` are inclusive bounds, ``gt``/``lt`` exclusive ones; all four are
    checked here and documented in the OpenAPI schema (volbal.schema.NumberExtension), together
    with the ``multipleOf`` that ``decimal_places`` implies."""

    def __init__(self, *, max_digits: int, decimal_places: int, gt=None, lt=None, **kwargs):
        super().__init__(
            max_digits=max_digits, decimal_places=decimal_places, coerce_to_string=False, **kwargs
        )
        self.gt = None if gt is None else Decimal(str(gt))
        self.lt = None if lt is None else Decimal(str(lt))
        if self.gt is not None:
            self.validators.append(_Exclusive(self.gt, above=True))
        if self.lt is not None:
            self.validators.append(_Exclusive(self.lt, above=False))

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, Decimal, float)):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not exactly_stored(value):
            raise serializers.ValidationError(
                f"This database (SQLite, local mode) keeps {SQLITE_DIGITS} significant digits; "
                "this value has more. PostgreSQL keeps every digit.")
        return value


class CaseInsensitiveChoice(serializers.ChoiceField):
    """One of upper-case ``choices`` (an order's side: BUY, SELL), taken in any case ("buy",
    "Sell") as a ticker is; answered in upper case."""

    def to_internal_value(self, data):
        return super().to_internal_value(data.upper() if isinstance(data, str) else data)


class _Exclusive:
    """An exclusive bound (Django's Min/MaxValueValidator are inclusive)."""

    def __init__(self, limit: Decimal, *, above: bool):
        self.limit, self.above = limit, above

    def __call__(self, value):
        if self.above and not value > self.limit:
            raise serializers.ValidationError(f"Ensure this value is greater than {self.limit}.")
        if not self.above and not value < self.limit:
            raise serializers.ValidationError(f"Ensure this value is less than {self.limit}.")


class Integer(serializers.IntegerField):
    # Beyond this a JSON number is refused before int(): int(Decimal("1e999999999")) would
    # build a billion-digit integer (minutes of CPU for a 16-byte request).
    MAGNITUDE_LIMIT = Decimal(10) ** 18

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, Decimal)):
            self.fail("invalid")
        if (data.copy_abs() if isinstance(data, Decimal) else abs(data)) >= self.MAGNITUDE_LIMIT:
            if data > 0 and self.max_value is not None:
                self.fail("max_value", max_value=self.max_value)
            if data < 0 and self.min_value is not None:
                self.fail("min_value", min_value=self.min_value)
            self.fail("invalid")
        if isinstance(data, Decimal) and data != data.to_integral_value():
            self.fail("invalid")
        return super().to_internal_value(int(data))


class Boolean(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


@extend_schema_field(OpenApiTypes.NUMBER)
class DecimalOut(serializers.Field):
    """Output-only: renders a Decimal as an exact JSON number."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return value
