"""An empty query value is an invalid value (docs/api.md#conventions): ``?limit=`` or ``?since=``
answers 400 ``invalid_query`` naming the parameter, like an invalid one, instead of being
ignored."""

from __future__ import annotations

import pytest

from conftest import assert_error

pytestmark = pytest.mark.django_db

LISTS = {
    "positions": ("/v1/positions", ["limit", "cursor", "ticker", "created_after",
                                    "created_before"]),
    "events": ("/v1/positions/{pid}/events", ["limit", "cursor", "type", "since", "until"]),
    "orders": ("/v1/positions/{pid}/orders", ["limit", "cursor"]),
    "dividends": ("/v1/positions/{pid}/dividends", ["limit", "cursor"]),
}
CASES = [(name, param) for name, (_, params) in LISTS.items() for param in params]


@pytest.mark.parametrize(("name", "param"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_an_empty_query_value_answers_400_naming_the_parameter(api, make_position, name, param):
    pid = make_position().id
    url = LISTS[name][0].format(pid=pid)
    body = assert_error(api.get(f"{url}?{param}="), 400, "invalid_query")
    assert set(body["fields"]) == {param}
    assert param in body["message"]
    assert api.get(url).status_code == 200  # the same list without it answers


def test_every_empty_parameter_is_named(api):
    body = assert_error(api.get("/v1/positions?ticker=&created_before=&limit=5"), 400,
                        "invalid_query")
    assert set(body["fields"]) == {"ticker", "created_before"}


def test_an_empty_repeat_of_a_list_parameter_is_refused(api, make_position):
    pid = make_position().id
    body = assert_error(api.get(f"/v1/positions/{pid}/events?type=position_created&type="), 400,
                        "invalid_query")
    assert set(body["fields"]) == {"type"}
