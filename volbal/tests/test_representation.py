"""volbal.representation: a compiled serializer answers what REST framework's own loop answers,
and refuses the fields a shared copy could answer wrongly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone
from rest_framework import serializers

from volbal.fields import DecimalOut
from volbal.representation import CompiledRepresentation


class Plain(serializers.Serializer):
    name = serializers.CharField()
    qty = DecimalOut()
    note = DecimalOut(allow_null=True)
    count = serializers.IntegerField()
    flag = serializers.BooleanField()
    kind = serializers.ChoiceField(choices=[("a", "A"), ("b", "B")])
    owner = serializers.CharField(source="owner_id", allow_null=True)
    at = serializers.DateTimeField()
    twice = serializers.SerializerMethodField()
    secret = serializers.CharField(write_only=True)

    def get_twice(self, obj):
        qty = obj["qty"] if isinstance(obj, dict) else obj.qty
        return qty * self.context.get("factor", 2)


class Compiled(CompiledRepresentation, Plain):
    pass


def thing(**kw):
    values = dict(name="x", qty=Decimal("1.50"), note=None, count=3, flag=True, kind="b",
                  owner_id=None, at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                  secret="s")
    return SimpleNamespace(**{**values, **kw})


def drf(serializer_class, instance, **kw):
    return serializers.Serializer.to_representation(serializer_class(**kw), instance)


@pytest.mark.parametrize("instance", [
    thing(), thing(note=Decimal("0"), owner_id="pf_1", flag=False, count=0, name=""),
    thing(at=dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
])
def test_the_same_representation_as_rest_frameworks_loop(instance):
    compiled = Compiled(instance).data
    assert compiled == drf(Plain, instance)
    assert list(compiled) == list(drf(Plain, instance))  # the same keys in the same order
    assert "secret" not in compiled


TIMES = [dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
         dt.datetime(2026, 7, 2, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
         dt.datetime(2026, 1, 2, 3, 4, 5),  # naive: made aware in the current zone
         dt.datetime(1, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),  # overflow
         "2026-01-02T03:04:05Z"]


@pytest.mark.parametrize("zone", [None, "Europe/Paris", "America/New_York"])
@pytest.mark.parametrize("at", TIMES)
def test_a_time_as_rest_framework_renders_it_in_the_current_zone(at, zone):
    """A plain DateTimeField is rendered with the current zone looked up once per instance:
    the same text as the field's own, in whatever zone is active, or the same error."""
    instance = thing(at=at)
    with timezone.override(zone):
        try:
            expected = drf(Plain, instance)
        except Exception as exc:  # the overflow: the same failure
            with pytest.raises(type(exc)):
                Compiled(instance).data  # noqa: B018
            return
        assert Compiled(instance).data == expected


@pytest.mark.parametrize("overrides", [{"USE_TZ": False},
                                       {"REST_FRAMEWORK": {"DATETIME_FORMAT": "%Y %H:%M"}},
                                       {"REST_FRAMEWORK": {"DATETIME_FORMAT": None}}])
def test_a_time_follows_the_settings_of_the_moment(settings, overrides):
    instance = thing(at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    Compiled(instance).data  # noqa: B018 (the plan is built under the project's settings)
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert Compiled(instance).data == drf(Plain, instance)


def test_each_instance_calls_its_own_methods_with_its_own_context():
    assert Compiled(thing(), context={"factor": 3}).data["twice"] == Decimal("4.50")
    assert Compiled(thing()).data["twice"] == Decimal("3.00")


def test_many_and_mappings():
    items = [thing(), thing(name="y", count=7)]
    assert Compiled(items, many=True).data == [drf(Plain, i) for i in items]
    mapping = {"name": "m", "qty": Decimal(1), "note": None, "count": 1, "flag": False,
               "kind": "a", "owner_id": None, "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    assert Compiled(mapping).data == drf(Plain, mapping)


def test_a_missing_attribute_follows_rest_frameworks_rules():
    instance = thing()
    del instance.owner_id  # allow_null: None, as REST framework answers
    assert Compiled(instance).data["owner"] is None
    del instance.name  # required: REST framework's error
    with pytest.raises(AttributeError):
        Compiled(instance).data  # noqa: B018


def test_fields_a_shared_copy_could_answer_wrongly_are_refused():
    class Nested(CompiledRepresentation, serializers.Serializer):
        inner = Plain()

    class Dotted(CompiledRepresentation, serializers.Serializer):
        name = serializers.CharField(source="owner.name")

    class Anything(CompiledRepresentation, serializers.Serializer):
        data = serializers.JSONField()

    for serializer_class in (Nested, Dotted, Anything):
        with pytest.raises(TypeError, match="cannot be compiled"):
            serializer_class(thing()).data  # noqa: B018
