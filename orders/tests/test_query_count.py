"""Queries per request on the hot path. The SQL floor of a submission is eight
statements inside BEGIN/COMMIT (claim the key, lock the position, count today's orders, sum what
the open orders still commit, read the latest known price (a buy's cost), insert the order and
its event, store the response); the API adds four reads: the caller's token and
user, the key's record (a replay is answered from it alone) and an order under the same key (the
order table holds one per key even after its record expired). No count grows with the orders a
position already has."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

BODY = '{"side":"BUY","qty":1}'


def submit(api, position, key):
    return api.post(f"/v1/positions/{position.id}/orders", data=BODY,
                    content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.fixture
def position(make_position):
    return make_position(cash="1000000", max_orders_per_day=1000)


def test_a_submission_takes_fourteen_statements_however_many_orders_came_before(
        api, position, django_assert_num_queries):
    for n in range(4):
        with django_assert_num_queries(14):
            assert submit(api, position, f"k{n}").status_code == 201


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
