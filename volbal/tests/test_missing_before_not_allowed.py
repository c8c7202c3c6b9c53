"""A method a detail route does not take, on an object that is not there (or not the caller's),
answers that object's 404, as every operation under it documents; on the caller's own object
it is still 405. Found by the schema fuzzer: an empty id filled into
``POST /v1/positions/{id}/orders`` is ``POST /v1/positions/orders``, the detail route of a
position named "orders", which answered an undocumented 405."""

from __future__ import annotations

import pytest

from conftest import assert_error

pytestmark = pytest.mark.django_db

BODY = {"side": "BUY", "qty": 1}


@pytest.mark.parametrize(("path", "code"), [
    ("/v1/positions/orders", "position_not_found"),
    ("/v1/positions/cash", "position_not_found"),
    ("/v1/positions/evaluate", "position_not_found"),
    ("/v1/orders/cancel", "order_not_found"),
    ("/v1/orders/fill", "order_not_found"),
    ("/v1/portfolios/cash", "portfolio_not_found"),
    ("/v1/portfolios/transfers", "portfolio_not_found"),
    ("/v1/sweeps/cancel", "sweep_not_found"),
])
def test_an_empty_id_under_a_detail_route_is_the_objects_404(api, path, code):
    response = api.post(path, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert_error(response, 404, code)


def test_a_method_not_taken_on_ones_own_position_is_still_405(api, make_position):
    position = make_position()
    response = api.post(f"/v1/positions/{position.id}", BODY, format="json",
                        HTTP_IDEMPOTENCY_KEY="k1")
    assert_error(response, 405, "method_not_allowed")


def test_another_owners_position_looks_absent_to_any_method(other_api, make_position):
    position = make_position()
    for method in ("post", "put", "delete"):
        response = getattr(other_api, method)(f"/v1/positions/{position.id}", BODY,
                                              format="json", HTTP_IDEMPOTENCY_KEY="k1")
        assert_error(response, 404, "position_not_found")
