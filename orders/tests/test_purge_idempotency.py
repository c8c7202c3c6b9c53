"""manage.py purge_idempotency_records: expired records go, live ones stay, and it says how many."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders import services
from orders.models import IdempotencyRecord, Order
from orders.services import idempotency_records_purge

pytestmark = pytest.mark.django_db


def record(key: str, expires_at: dt.datetime) -> IdempotencyRecord:
    return IdempotencyRecord.objects.create(
        identity="user:1", method="POST", path="/v1/positions", key=key, fingerprint="f" * 64,
        status_code=201, response_body=b"{}", expires_at=expires_at,
    )


def purge() -> str:
    out = io.StringIO()
    call_command("purge_idempotency_records", stdout=out)
    return out.getvalue()


def test_the_command_deletes_expired_records_only_and_says_how_many():
    now = timezone.now()
    for n in range(3):
        record(f"old-{n}", now - dt.timedelta(hours=1 + n))
    record("live-1", now + dt.timedelta(minutes=1))
    record("live-2", now + dt.timedelta(hours=24))
    assert "Deleted 3 expired idempotency records" in purge()
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["live-1", "live-2"]
    assert "Deleted 0 expired idempotency records" in purge()


def test_the_command_says_record_for_one():
    record("old", timezone.now() - dt.timedelta(seconds=1))
    assert "Deleted 1 expired idempotency record " in purge()


def test_the_service_takes_the_time_and_counts_the_boundary_as_expired():
    t = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
    record("before", t - dt.timedelta(microseconds=1))
    record("at", t)  # the middleware treats a key as expired at its expiry instant too
    record("after", t + dt.timedelta(microseconds=1))
    assert idempotency_records_purge(now=t) == 2
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["after"]
    assert idempotency_records_purge(now=t) == 0


def test_the_service_deletes_in_batches(monkeypatch):
    monkeypatch.setattr(services, "PURGE_BATCH", 3)
    past = timezone.now() - dt.timedelta(days=2)
    for n in range(8):
        record(f"k{n}", past)
    record("live", timezone.now() + dt.timedelta(hours=1))
    assert idempotency_records_purge() == 8
    assert IdempotencyRecord.objects.count() == 1


def test_records_written_by_requests_expire_after_the_configured_hours(api, make_position,
                                                                       settings):
    settings.VOLBAL_IDEMPOTENCY_TTL_HOURS = 2
    position = make_position()
    before = timezone.now()
    api.post(f"/v1/positions/{position.id}/orders", {"side": "BUY", "qty": 1}, format="json",
             HTTP_IDEMPOTENCY_KEY="ttl")
    stored = IdempotencyRecord.objects.get(key="ttl")
    assert before + dt.timedelta(hours=2) <= stored.expires_at <= timezone.now() + dt.timedelta(
        hours=2)
    assert idempotency_records_purge() == 0
    assert idempotency_records_purge(now=stored.expires_at) == 1


def test_after_the_purge_a_position_key_is_a_new_request(api):
    body = {"ticker": "ZIM", "qty": 0, "cash": 100}
    first = api.post("/v1/positions", body, format="json", HTTP_IDEMPOTENCY_KEY="p")
    IdempotencyRecord.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert "Deleted 1 " in purge()
    again = api.post("/v1/positions", {**body, "cash": 200}, format="json",
                     HTTP_IDEMPOTENCY_KEY="p")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] != first.json()["id"]


def test_after_the_purge_an_order_key_still_answers_its_order(api, make_position):
    position = make_position()
    url = f"/v1/positions/{position.id}/orders"
    first = api.post(url, {"side": "BUY", "qty": 1}, format="json", HTTP_IDEMPOTENCY_KEY="o")
    IdempotencyRecord.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    purge()
    again = api.post(url, {"side": "BUY", "qty": 1}, format="json", HTTP_IDEMPOTENCY_KEY="o")
    assert again.status_code == 200 and again.json()["order_id"] == first.json()["order_id"]
    other = api.post(url, {"side": "SELL", "qty": 1}, format="json", HTTP_IDEMPOTENCY_KEY="o")
    assert (other.status_code, other.json()["detail"]) == (409, "idempotency_signature_mismatch")
    assert Order.objects.count() == 1


def test_an_expired_record_not_yet_purged_is_not_replayed(api):
    body = {"ticker": "ZIM", "qty": 0, "cash": 100}
    first = api.post("/v1/positions", body, format="json", HTTP_IDEMPOTENCY_KEY="late")
    IdempotencyRecord.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    again = api.post("/v1/positions", body, format="json", HTTP_IDEMPOTENCY_KEY="late")
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
    assert IdempotencyRecord.objects.filter(key="late").count() == 1
    assert idempotency_records_purge() == 0  # the record was claimed afresh
