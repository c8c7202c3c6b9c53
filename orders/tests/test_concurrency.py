"""Real parallel requests on PostgreSQL: one order per key, the daily cap, no over-fill, no
negative balances. Every thread has its own client and its own database connection, and a
barrier releases them together so the requests really overlap."""

from __future__ import annotations

import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from conftest import client_for
from events.models import Event
from orders.models import Fill, IdempotencyRecord, Order
from positions.models import Position
from volbal import clock

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_parallel(n: int, request) -> list:
    """Call ``request(i)`` in ``n`` threads released together; returns the n results in order."""
    barrier = threading.Barrier(n, timeout=30)
    results: list = [None] * n
    errors: list = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = request(i)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert not errors, errors
    return results


def answers(user, method: str, url: str, bodies, keys=None):
    """A function for run_parallel: request i sends bodies[i] with keys[i], its own client."""

    def request(i: int):
        client = client_for_thread(user)
        headers = {} if keys is None or keys[i] is None else {"HTTP_IDEMPOTENCY_KEY": keys[i]}
        response = getattr(client, method)(url, bodies[i], format="json", **headers)
        return response.status_code, response.json(), response.headers.get("Idempotent-Replayed")

    return request


_token_lock = threading.Lock()


def client_for_thread(user):
    with _token_lock:  # the token exists already; get_or_create only reads
        return client_for(user)


@pytest.fixture
def api_user(user):
    client_for(user)  # create the token once, committed, before the threads start
    return user


def open_order(position, side: str, qty, key: str) -> Order:
    from orders.services import order_submit

    return order_submit(position=position, side=side, qty=Decimal(str(qty)), idempotency_key=key)


# --- submission ---------------------------------------------------------------------------------


def test_sixteen_concurrent_submits_with_one_key_create_one_order(api_user, make_position):
    position = make_position()
    n = 16
    results = run_parallel(
        n,
        answers(api_user, "post", f"/v1/positions/{position.id}/orders",
                [{"side": "BUY", "qty": 1.5}] * n, ["same-key"] * n),
    )
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {201: 1, 200: n - 1}, results
    order_ids = {body["order_id"] for _, body, _ in results}
    assert len(order_ids) == 1
    assert all(replayed == "true" for status, _, replayed in results if status == 200)
    assert list(Order.objects.values_list("id", flat=True)) == list(order_ids)
    assert Event.objects.filter(position_id=position.pk, type="order_submitted").count() == 1
    assert IdempotencyRecord.objects.count() == 1


def test_concurrent_submits_with_one_key_and_different_bodies_place_one_order(
    api_user, make_position
):
    position = make_position()
    n = 12
    bodies = [{"side": "BUY", "qty": 1 + i % 2} for i in range(n)]
    results = run_parallel(
        n, answers(api_user, "post", f"/v1/positions/{position.id}/orders", bodies, ["k"] * n)
    )
    assert Order.objects.count() == 1
    order = Order.objects.get()
    for (status, body, _), sent in zip(results, bodies, strict=True):
        if Decimal(str(sent["qty"])) == order.qty:
            assert status in (200, 201) and body["order_id"] == order.id
        else:
            assert (status, body["detail"]) == (409, "idempotency_signature_mismatch")
    assert sum(1 for status, _, _ in results if status == 201) == 1


@pytest.fixture
def count_then_linger(monkeypatch):
    """Stretch the window between counting today's orders and inserting one, so that a
    missing position lock shows every time, whatever ran before (warm caches make requests so
    quick that they rarely overlap by luck; 4 runs of 4 in file order passed without the lock).

    The real count runs on the real database; after it, a request waits (at most 5 s) until
    ``quorum`` requests have counted, or until a request is waiting on a database lock: with
    the position locked, the others wait on that lock and this one goes on at once; without
    it, ``quorum`` requests count the same orders before any of them inserts one."""
    from orders import services

    real = services.orders_created_today
    arrived = threading.Condition()
    state = {"counted": 0, "quorum": None}

    def lock_waiters() -> int:
        with connection.cursor() as cursor:  # pg_locks is live, not a per-transaction snapshot
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            return cursor.fetchone()[0]

    def counted_then_linger(**kwargs):
        n = real(**kwargs)
        with arrived:
            state["counted"] += 1
            arrived.notify_all()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with arrived:
                if state["counted"] >= state["quorum"]:
                    break
                arrived.wait(0.01)
            if lock_waiters():
                break
        return n

    def arm(quorum: int) -> None:
        state["quorum"] = quorum
        monkeypatch.setattr(services, "orders_created_today", counted_then_linger)

    return arm


def test_twenty_concurrent_submits_never_exceed_the_daily_cap(api_user, make_position,
                                                              count_then_linger):
    cap = 5
    n = 20
    count_then_linger(quorum=cap + 1)
    for round_ in range(2):  # a second position: the cap is per position, the lock too
        position = make_position(max_orders_per_day=cap)
        results = run_parallel(
            n,
            answers(api_user, "post", f"/v1/positions/{position.id}/orders",
                    [{"side": "BUY", "qty": 1}] * n, [f"key-{round_}-{i}" for i in range(n)]),
        )
        statuses = Counter(status for status, _, _ in results)
        assert statuses == {201: cap, 409: n - cap}, results
        assert all(body["detail"] == "daily_order_cap_exceeded"
                   for status, body, _ in results if status == 409)
        assert Order.objects.filter(position=position).count() == cap
        assert Event.objects.filter(position_id=position.pk, type="order_submitted").count() == cap
    assert IdempotencyRecord.objects.count() == 2 * cap  # the refused ones stored nothing


def test_concurrent_position_creates_with_one_key_open_one_position(api_user):
    n = 10
    results = run_parallel(
        n,
        answers(api_user, "post", "/v1/positions",
                [{"ticker": "ZIM", "qty": 0, "cash": 10000}] * n, ["open-once"] * n),
    )
    assert Counter(status for status, _, _ in results) == {201: 1, 200: n - 1}
    assert len({body["id"] for _, body, _ in results}) == 1
    assert Position.objects.count() == 1


# --- fills --------------------------------------------------------------------------------------


def test_concurrent_fills_never_overfill_an_order(api_user, make_position):
    position = make_position(qty=0, cash=100000)
    order = open_order(position, "BUY", 10, "big")
    n = 10  # each fills 3: three fit in the order's 10, then 1 is left
    results = run_parallel(
        n,
        answers(api_user, "post", f"/v1/orders/{order.id}/fill",
                [{"price": 100, "filled_qty": 3, "commission": 0}] * n),
    )
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {200: 3, 409: 7}, results
    assert {body["detail"] for status, body, _ in results if status == 409} == {
        "fill_exceeds_order"
    }
    order.refresh_from_db()
    position.refresh_from_db()
    assert (order.status, order.filled_qty) == ("partially_filled", Decimal(9))
    assert Fill.objects.filter(order=order).count() == 3
    assert (position.qty, position.cash) == (Decimal(9), Decimal(100000 - 900))
    assert Event.objects.filter(position_id=position.pk, type="fill_rejected").count() == 7


def test_concurrent_fills_of_the_whole_order_fill_it_once(api_user, make_position):
    position = make_position(qty=0, cash=100000)
    order = open_order(position, "BUY", 10, "big")
    n = 8
    results = run_parallel(
        n,
        answers(api_user, "post", f"/v1/orders/{order.id}/fill",
                [{"price": 100, "filled_qty": 10, "commission": 0}] * n),
    )
    assert Counter(status for status, _, _ in results) == {200: 1, 409: n - 1}
    assert {body["detail"] for status, body, _ in results if status == 409} == {"order_not_open"}
    position.refresh_from_db()
    assert (position.qty, position.cash) == (Decimal(10), Decimal(99000))


def test_concurrent_buy_fills_never_drive_cash_negative(api_user, make_position):
    position = make_position(qty=0, cash=1000, max_orders_per_day=20)
    orders = [open_order(position, "BUY", 1, f"b{i}") for i in range(10)]
    results = run_parallel(
        10,
        lambda i: answers(api_user, "post", f"/v1/orders/{orders[i].id}/fill",
                          {i: {"price": 300, "filled_qty": 1, "commission": 0}})(i),
    )
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {200: 3, 409: 7}, results  # 3 x 300 fit in 1000, a fourth does not
    assert {body["detail"] for status, body, _ in results if status == 409} == {
        "insufficient_cash"
    }
    position.refresh_from_db()
    assert (position.qty, position.cash) == (Decimal(3), Decimal(100))
    assert Fill.objects.count() == 3
    assert Event.objects.filter(position_id=position.pk, type="fill_rejected").count() == 7


def test_concurrent_sell_submissions_never_commit_more_shares_than_held(api_user,
                                                                       make_position):
    position = make_position(qty=3, cash=0, max_orders_per_day=20)
    n = 10
    results = run_parallel(
        n, answers(api_user, "post", f"/v1/positions/{position.id}/orders",
                   [{"side": "SELL", "qty": 1}] * n, [f"sell-{i}" for i in range(n)]))
    assert Counter(status for status, _, _ in results) == {201: 3, 409: 7}, results
    assert {body["detail"] for status, body, _ in results if status == 409} == {
        "insufficient_qty"}
    assert Order.objects.filter(position=position).count() == 3
    assert not IdempotencyRecord.objects.filter(key__startswith="sell-").count() > 3


def test_concurrent_sell_fills_never_drive_shares_negative(api_user, make_position):
    position = make_position(qty=3, cash=0, max_orders_per_day=20)
    # Ten open sells of 1 against 3 shares: submission refuses this today, but orders placed
    # before it checked holdings (or reported by a broker) must still never oversell.
    orders = [Order.objects.create(position=position, side="SELL", qty=Decimal(1),
                                   trading_day=clock.trading_day()) for _ in range(10)]
    results = run_parallel(
        10,
        lambda i: answers(api_user, "post", f"/v1/orders/{orders[i].id}/fill",
                          {i: {"price": 10, "filled_qty": 1, "commission": 0}})(i),
    )
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {200: 3, 409: 7}, results
    assert {body["detail"] for status, body, _ in results if status == 409} == {
        "insufficient_qty"
    }
    position.refresh_from_db()
    assert (position.qty, position.cash) == (Decimal(0), Decimal(30))


def test_concurrent_fills_with_one_key_apply_once(api_user, make_position):
    position = make_position(qty=0, cash=10000)
    order = open_order(position, "BUY", 10, "o")
    n = 10
    results = run_parallel(
        n,
        answers(api_user, "post", f"/v1/orders/{order.id}/fill",
                [{"price": 100, "filled_qty": 1, "commission": 0}] * n, ["fill-once"] * n),
    )
    assert Counter(status for status, _, _ in results) == {200: n}
    assert len({body["fill"]["id"] for _, body, _ in results}) == 1
    assert sum(1 for _, _, replayed in results if replayed == "true") == n - 1
    position.refresh_from_db()
    assert (position.qty, position.cash) == (Decimal(1), Decimal(9900))


def test_concurrent_cancel_and_fills_agree(api_user, make_position):
    position = make_position(qty=0, cash=10000)
    order = open_order(position, "BUY", 4, "o")
    n = 5  # one cancel, four fills of 1

    def request(i: int):
        client = client_for_thread(api_user)
        if i == 0:
            response = client.post(f"/v1/orders/{order.id}/cancel", format="json")
        else:
            response = client.post(f"/v1/orders/{order.id}/fill",
                                   {"price": 100, "filled_qty": 1, "commission": 0},
                                   format="json")
        return response.status_code, response.json(), None

    results = run_parallel(n, request)
    order.refresh_from_db()
    position.refresh_from_db()
    fills = Fill.objects.filter(order=order).count()
    assert sum(1 for status, _, _ in results[1:] if status == 200) == fills
    assert order.filled_qty == fills == position.qty
    assert position.cash == Decimal(10000) - 100 * fills
    if results[0][0] == 200:
        assert order.status == "cancelled"
    else:  # the fills won the race and filled the order before the cancel
        assert results[0][1]["detail"] == "order_not_open" and order.status == "filled"


# --- a cancel racing the cycle's placement with a broker that holds orders ---------------------


def test_a_cancel_racing_an_alpaca_placement_never_ends_an_order_alpaca_holds(
        api_user, make_position, monkeypatch):
    """The API's cancel and the cycle's routing of one unrouted Alpaca order, released
    together, ten times: either the cancel wins (200, the order ends and is never placed) or
    the placement does (202: the cancel is a request, sent once the order is recorded routed).
    Never an order ended here that Alpaca was sent."""
    from orders.brokers import alpaca
    from orders.brokers import service as brokers

    placed, sent = [], []

    def place(self, ticket):
        placed.append(ticket.order_id)
        time.sleep(0.01)  # the call, with no lock held
        return f"alp-{ticket.order_id}"

    monkeypatch.setattr(alpaca.AlpacaBroker, "place", place)
    monkeypatch.setattr(alpaca.AlpacaBroker, "cancel", lambda self, t: sent.append(t.order_id))
    position = make_position(qty="0", cash="100000", broker="alpaca", max_orders_per_day=20)
    outcomes = Counter()
    for i in range(10):
        order = open_order(position, "BUY", 1, f"race-{i}")

        def request(k: int, order_id=order.id):
            if k == 0:
                return client_for_thread(api_user).post(f"/v1/orders/{order_id}/cancel").status_code
            brokers.orders_route()
            return None

        status, _ = run_parallel(2, request)
        brokers.orders_route()  # a later cycle: sends a cancel requested meanwhile
        order.refresh_from_db()
        if status == 200:
            assert order.id not in placed and order.status == "cancelled"
            assert order.routed_at is None
        else:
            assert status == 202 and order.id in placed, (status, placed)
            assert order.status == "submitted" and order.routed_at is not None
            assert order.id in sent and order.cancel_sent_at is not None
            Order.objects.filter(pk=order.pk).update(status="cancelled")  # as Alpaca reports
        outcomes[status] += 1
    assert sum(outcomes.values()) == 10


def test_parallel_evaluations_and_configuration_changes_rest_one_order_per_rung(
        api_user, make_position):
    """A limit position's evaluations (the cycle's step) and PATCHes of its configuration, in
    parallel: each locks the position, so the rungs are replaced one writer at a time; at no
    point two orders rest for one rung (the database refuses it: order_one_open_per_rung), and
    after a last evaluation exactly the ladder's rungs rest."""
    from positions.services import prices_record
    from positions.workflows import evaluation
    from positions.workflows.resting import resting_wanted

    pos = make_position(qty="50", cash="5000", anchor_price="100", broker="paper",
                        order_type="limit", auto_submit=True, commission_rate="0",
                        min_notional="0", guard_low="0", guard_high="1", fractional=False)
    prices_record(rows=[{"ticker": "ZIM", "price": Decimal("100"), "ts": clock.now()}])
    url = f"/v1/positions/{pos.id}"
    patches = answers(api_user, "patch", url, [{"trigger_pct": t} for t in
                                               (0.02, 0.03, 0.04, 0.05)])

    def request(i: int):
        if i % 2:
            return patches(i // 2)[0]
        evaluation.position_evaluate(owner=None, position_id=pos.id, submit=True,
                                     source="cron")
        return 200

    assert run_parallel(8, request) == [200] * 8
    evaluation.position_evaluate(owner=None, position_id=pos.id, submit=True, source="cron")
    pos.refresh_from_db()
    want = resting_wanted(pos)
    rest = Order.objects.filter(position=pos, status="submitted")
    assert sorted((o.rung, o.limit_price, o.qty) for o in rest) == [
        (w.side, w.limit, w.qty) for w in (want.buy, want.sell)]
    assert Counter(Order.objects.filter(position=pos).values_list("status", flat=True))[
        "submitted"] == 2
