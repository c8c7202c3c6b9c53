"""Queries per request on the hot path. The SQL floor of a submission is eight
statements inside BEGIN/COMMIT (claim the key, lock the position, count today's orders, sum what
the open orders still commit, read the latest known price (a buy's cost), insert the order and
its event, store the response). The application sends five inside: the key's record, the
position locked with its known price and whether its owner has a webhook endpoint (one
statement: the last fill is the position's own columns, the stored price one probe of its
index), then under the lock the key's order, today's count and the open sums (one statement),
the order and its event (one statement: volbal.rows.insert_one's ``after``), the response.
Around them: the caller's token and user, the key's record read first (a replay is answered
from it alone), the savepoint and its release (a transaction of its own outside the tests),
and no webhook wake-up for an owner without an endpoint. No count grows with the orders a
position already has. A read of one position: the token, the user, the position with its
known price (one statement)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from events.webhooks.services import webhook_create
from positions.models import Price
from volbal import clock

pytestmark = pytest.mark.django_db

BODY = '{"side":"BUY","qty":1}'


def submit(api, position, key):
    return api.post(f"/v1/positions/{position.id}/orders", data=BODY,
                    content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.fixture
def position(make_position):
    return make_position(cash="1000000", max_orders_per_day=1000)


def test_a_submission_takes_ten_statements_however_many_orders_came_before(
        api, position, django_assert_num_queries):
    # PostgreSQL writes the order and its event in one statement (volbal.rows.insert_one's
    # after=); SQLite in two
    statements = 10 if connection.vendor == "postgresql" else 11
    for n in range(4):
        with django_assert_num_queries(statements):
            assert submit(api, position, f"k{n}").status_code == 201


def test_a_read_of_one_position_takes_three_statements_whatever_its_history(
        api, position, django_assert_num_queries):
    from orders.services import order_fill, order_submit_for

    Price.objects.create(ticker=position.ticker, price=Decimal("20"), ts=clock.now())
    order, _ = order_submit_for(owner=position.owner, position_id=position.id, side="BUY",
                                qty=Decimal(2), idempotency_key=None)
    order_fill(owner=position.owner, order_id=order.id, price=Decimal("21"),
               filled_qty=Decimal(2))
    with django_assert_num_queries(3):
        body = api.get(f"/v1/positions/{position.id}").json()
    assert (body["price"], body["price_source"]) == (21, "fill")


# Committed for real (on_commit callbacks run): the wake-up is what runs after the commit.
@pytest.mark.django_db(transaction=True)
def test_no_webhook_wake_up_for_an_owner_without_an_endpoint(api, position):
    with CaptureQueriesContext(connection) as ctx:
        assert submit(api, position, "k1").status_code == 201
    assert ctx.captured_queries[-1]["sql"] == "COMMIT"  # nothing after it
    assert not any("wake_queued" in q["sql"] for q in ctx.captured_queries)
    assert DBTaskResult.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_owner_with_an_endpoint_has_its_delivery_woken_after_the_commit(api, position):
    webhook_create(owner=position.owner, url="https://hooks.example.com/volbal",
                   event_types=["all"])
    assert DBTaskResult.objects.count() == 0
    with CaptureQueriesContext(connection) as ctx:
        assert submit(api, position, "k1").status_code == 201
    assert any("wake_queued" in q["sql"] for q in ctx.captured_queries)
    assert DBTaskResult.objects.filter(status="READY").count() == 1


def test_a_replay_takes_three_reads_and_no_transaction(api, position, django_assert_num_queries):
    assert submit(api, position, "k1").status_code == 201
    with django_assert_num_queries(3) as ctx:
        response = submit(api, position, "k1")
    assert response.status_code == 200 and response["Idempotent-Replayed"] == "true"
    assert not any("SAVEPOINT" in q["sql"] or "INSERT" in q["sql"]
                   for q in ctx.captured_queries)


def test_a_mismatch_is_answered_from_the_same_three_reads(api, position,
                                                         django_assert_num_queries):
    assert submit(api, position, "k1").status_code == 201
    with django_assert_num_queries(3):
        response = api.post(f"/v1/positions/{position.id}/orders", data='{"side":"SELL","qty":1}',
                            content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 409
    assert response.json()["detail"] == "idempotency_signature_mismatch"
