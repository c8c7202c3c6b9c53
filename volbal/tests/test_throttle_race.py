"""The per-user rate of the expensive endpoints holds under parallel requests
(volbal/throttling.py): a real gunicorn (4 workers of 4 threads) on PostgreSQL, 80 backtests
sent at once by one user on a 30-a-minute budget: exactly 30 are answered, the other 50 are 429
``throttled`` with Retry-After. Before, the history was read and written back without a lock:
52 passed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from volbal.tests.live_server import call, live_server

pytestmark = [pytest.mark.system, pytest.mark.postgres, pytest.mark.django_db]

BUDGET = 30
REQUESTS = 80


@pytest.fixture(scope="module")
def server(tmp_path_factory, django_db_blocker):
    with django_db_blocker.unblock(), live_server(
            tmp_path_factory.mktemp("throttle"), workers=4,
            env={"GUNICORN_THREADS": "4", "VOLBAL_THROTTLE_EXPENSIVE": f"{BUDGET}/min"}) as base:
        yield base


def test_parallel_requests_past_the_budget_are_refused_exactly(server):
    body = {"prices": [{"ts": f"2024-01-0{i + 1}", "price": 100 + i} for i in range(5)]}
    start = threading.Barrier(REQUESTS)

    def one(_):
        start.wait()
        return call(server + "/v1/backtests", method="POST", body=body)

    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = list(pool.map(one, range(REQUESTS)))
    statuses = sorted(status for status, _, _ in answers)
    assert statuses.count(200) == BUDGET, statuses
    refused = [(body, headers) for status, body, headers in answers if status == 429]
    assert len(refused) == REQUESTS - BUDGET, statuses
    assert all(body["detail"] == "throttled" and 0 < int(headers["Retry-After"]) <= 60
               for body, headers in refused)
