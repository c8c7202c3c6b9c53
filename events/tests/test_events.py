"""The audit trail: GET /v1/positions/{id}/events, and the database refusing UPDATE and DELETE."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from conftest import assert_error
from events.models import Event
from events.services import event_record

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def events_url(position_id: str) -> str:
    return f"/v1/positions/{position_id}/events"


def trade(api, position, qty=2, price=100) -> str:
    order_id = api.post(f"/v1/positions/{position.id}/orders", {"side": "BUY", "qty": qty},
                        format="json", HTTP_IDEMPOTENCY_KEY=f"k-{qty}-{price}").json()["order_id"]
    api.post(f"/v1/orders/{order_id}/fill", {"price": price, "filled_qty": qty}, format="json")
    return order_id


def timed_events(position, count: int) -> list[int]:
    """``count`` events one hour apart from T0 (inserting with a time is allowed; changing is
    not)."""
    return [
        Event.objects.create(position_id=position.pk, type="evaluation", message=f"e{n}",
                             created_at=T0 + dt.timedelta(hours=n)).id
        for n in range(count)
    ]


# --- the list -----------------------------------------------------------------------------------


def test_events_are_listed_oldest_first_with_every_field(api, make_position):
    position = make_position()
    order_id = trade(api, position)
    response = api.get(events_url(position.id))
    assert response.status_code == 200
    body = response.json()
    assert body["position_id"] == position.id and body["next"] is None
    assert [e["type"] for e in body["events"]] == [
        "position_created",
        "order_submitted",
        "order_filled",
        "anchor_updated",
    ]
    ids = [e["id"] for e in body["events"]]
    assert ids == sorted(ids)
    filled = body["events"][2]
    assert set(filled) == {"id", "type", "position_id", "portfolio_id", "order_id", "message",
                           "inputs", "outputs", "actor", "created_at"}
    assert filled["order_id"] == order_id and filled["position_id"] == position.id
    assert filled["inputs"]["price"] == 100 and filled["outputs"]["status"] == "filled"
    assert body["events"][0]["order_id"] is None


def test_events_filter_by_type(api, make_position):
    position = make_position()
    trade(api, position)
    body = api.get(events_url(position.id), {"type": "anchor_updated"}).json()
    assert [e["type"] for e in body["events"]] == ["anchor_updated"]
    several = api.get(f"{events_url(position.id)}?type=order_submitted&type=order_filled").json()
    assert [e["type"] for e in several["events"]] == ["order_submitted", "order_filled"]
    assert api.get(events_url(position.id), {"type": "dividend_cash_received"}).json()[
        "events"] == []


def test_events_filter_by_time_since_inclusive_until_exclusive(api, make_position):
    position = make_position()
    ids = timed_events(position, 4)

    def listed(query):
        response = api.get(events_url(position.id), query)
        assert response.status_code == 200, response.content
        return [e["id"] for e in response.json()["events"]]

    assert listed({"since": "2025-03-01T13:00:00Z", "until": "2025-03-01T15:00:00Z"}) == ids[1:3]
    assert listed({"since": "2025-03-01T14:00:00+00:00", "until": "2025-03-02T00:00:00Z"}) == [
        ids[2], ids[3]]
    assert listed({"until": "2025-03-01T12:00:00Z"}) == []
    assert listed({"until": "2025-03-01T12:00:00.000001Z"}) == ids[:1]
    # an offset is honoured: 09:00 in New York (UTC-5) is 14:00 UTC
    assert listed({"since": "2025-03-01T09:00:00-05:00", "until": "2025-03-01T10:00:00-05:00"}) == [
        ids[2]]


def test_events_page_with_limit_and_cursor(api, make_position):
    position = make_position()
    timed_events(position, 6)  # 7 events with position_created
    expected = list(Event.objects.filter(position_id=position.pk).order_by("id").values_list("id",
                                                                                        flat=True))
    seen, query, pages = [], {"limit": 3}, 0
    while True:
        body = api.get(events_url(position.id), query).json()
        pages += 1
        seen += [e["id"] for e in body["events"]]
        if body["next"] is None:
            break
        query = {"limit": 3, "cursor": body["next"]}
    assert seen == expected and pages == 3


def test_events_page_within_a_filter(api, make_position):
    position = make_position()
    ids = timed_events(position, 5)
    query = {"type": "evaluation", "since": "2025-03-01T13:00:00Z", "limit": 2}
    first = api.get(events_url(position.id), query).json()
    second = api.get(events_url(position.id), {**query, "cursor": first["next"]}).json()
    assert [e["id"] for e in first["events"] + second["events"]] == ids[1:]
    assert second["next"] is None


def test_events_show_only_the_position_s_own(api, make_position):
    mine, other = make_position(), make_position(ticker="AAPL")
    trade(api, other)
    assert [e["type"] for e in api.get(events_url(mine.id)).json()["events"]] == [
        "position_created"]


def test_events_of_an_unknown_position_answer_404(api):
    assert_error(api.get(events_url("pos_nope")), 404, "position_not_found")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"type": "nonsense"}, "type"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-02-30T00:00:00Z"}, "until"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": "WyJhYmMiXQ"}, "cursor"),  # ["abc"]
        ({"cursor": "WzEsMl0"}, "cursor"),  # [1,2]
    ],
)
def test_bad_event_queries_answer_400_invalid_query(api, make_position, query, field):
    position = make_position()
    body = assert_error(api.get(events_url(position.id), query), 400, "invalid_query")
    assert field in body["fields"]


# --- append-only, enforced by the database ------------------------------------------------------


@pytest.fixture
def event(make_position):
    position = make_position()
    return event_record(position_id=position.id, type="evaluation", message="kept for ever",
                        inputs={"price": 1}, outputs={"reason": "x"})


def refused(action) -> None:
    """``action`` must fail in the database; the test's transaction survives (savepoint)."""
    with pytest.raises(DatabaseError), transaction.atomic():
        action()


def assert_unchanged(event) -> None:
    stored = Event.objects.get(pk=event.pk)
    assert (stored.message, stored.type, stored.inputs) == ("kept for ever", "evaluation",
                                                            {"price": 1})


def test_a_queryset_update_of_an_event_fails(event):
    refused(lambda: Event.objects.filter(pk=event.pk).update(message="rewritten"))
    assert_unchanged(event)


def test_saving_a_changed_event_fails(event):
    event.message = "rewritten"
    refused(event.save)
    assert_unchanged(event)


def test_a_queryset_delete_of_an_event_fails(event):
    refused(lambda: Event.objects.filter(pk=event.pk).delete())
    assert_unchanged(event)


def test_deleting_an_event_instance_fails(event):
    refused(event.delete)
    assert_unchanged(event)


def test_a_bulk_delete_of_every_event_fails(event):
    refused(lambda: Event.objects.all().delete())
    assert Event.objects.count() >= 2


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE events_event SET message = 'rewritten' WHERE id = %s",
        "UPDATE events_event SET type = 'order_filled' WHERE id = %s",
        "DELETE FROM events_event WHERE id = %s",
    ],
)
def test_raw_sql_update_and_delete_of_an_event_fail(event, sql):
    def run():
        with connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])

    refused(run)
    assert_unchanged(event)


def test_events_can_still_be_appended_after_a_refusal(event):
    refused(lambda: Event.objects.filter(pk=event.pk).delete())
    more = event_record(position_id=event.position_id, type="evaluation", message="next")
    assert more.pk > event.pk


def test_decimals_in_payloads_render_as_the_api_renders_decimals(api):
    # Before: 0.000001 came back as the float 1e-06 and the cash as the string
    # "9999999999999999.999999"; both are now the exact JSON numbers the API uses elsewhere.
    # (SQLite, local mode, keeps 15 significant digits: the largest cash it takes)
    cash = "9999999999999999.999999" if connection.vendor == "postgresql" else "999999999.999999"
    created = api.post("/v1/positions", '{"ticker": "ZIM", "qty": 0.000001, '
                       f'"cash": {cash}}}', content_type="application/json")
    assert created.status_code == 201, created.content
    raw = api.get(events_url(created.json()["id"])).content.decode()
    assert '"qty":0.000001,' in raw and '"qty":0.000001,' in created.content.decode()
    assert f'"cash":{cash},' in raw and f'"cash":{cash},' in created.content.decode()
    assert '"trigger_pct":0.03,' in raw  # as GET /v1/positions/{id} shows it
    event = json.loads(raw, parse_float=Decimal)["events"][0]
    assert event["type"] == "position_created"
    assert event["inputs"]["cash"] == Decimal(cash)
    assert event["inputs"]["anchor_price"] is None
