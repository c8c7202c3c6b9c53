"""verify_ledger replays the cash movements: a property over random deposits, withdrawals and
transfers (some refused) of a portfolio and its positions, and the differences it finds when
a balance was changed behind the books' back."""

from __future__ import annotations

from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from positions.models import Portfolio, Position
from positions.portfolios.services import (
    portfolio_cash_move,
    portfolio_create,
    portfolio_transfer,
    position_cash_move,
    position_open,
)
from positions.workflows.ledger import ledger_verify
from volbal.errors import DomainError

amounts = st.integers(-3_000_000_000, 3_000_000_000).filter(bool).map(lambda i: D(i).scaleb(-6))
ACCOUNTS = ("portfolio", 0, 1, 2)  # F, or the n-th position (2 is outside the portfolio)
moves = st.lists(st.one_of(
    st.tuples(st.just("portfolio_cash"), amounts),
    st.tuples(st.just("position_cash"), st.integers(0, 2), amounts),
    st.tuples(st.just("transfer"), st.sampled_from(ACCOUNTS), st.sampled_from(ACCOUNTS),
              amounts.map(abs)),
), max_size=25)


def _ledger_clean() -> str:
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(opening=st.integers(0, 2000), history=moves)
def test_any_history_of_cash_movements_verifies(user, opening, history):
    with transaction.atomic():  # each example rolls back: the next starts from nothing
        portfolio = portfolio_create(owner=user, name="P", cash=D(opening))
        positions = [position_open(owner=user, ticker=f"T{i}", qty=D(0), cash=D(100 * i),
                                   portfolio=portfolio.id if i < 2 else None) for i in range(3)]

        def account(a):
            return a if a == "portfolio" else positions[a].id

        refused = 0
        for move in history:
            try:
                if move[0] == "portfolio_cash":
                    portfolio_cash_move(owner=user, portfolio_id=portfolio.id, amount=move[1])
                elif move[0] == "position_cash":
                    position_cash_move(owner=user, position_id=positions[move[1]].id,
                                       amount=move[2])
                else:
                    portfolio_transfer(owner=user, portfolio_id=portfolio.id,
                                       source=account(move[1]), target=account(move[2]),
                                       amount=move[3])
            except DomainError as exc:
                assert exc.code in ("insufficient_cash", "same_account",
                                    "position_not_in_portfolio", "validation_error",
                                    "invalid_amount"), exc.code
                refused += 1
            balances = [Portfolio.objects.get().cash,
                        *Position.objects.values_list("cash", flat=True)]
            assert min(balances) >= 0
        report = ledger_verify()
        assert report.differences == []
        assert report.portfolios == 1
        assert "ledger ok" in _ledger_clean()
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_balance_changed_outside_the_books_is_a_difference(user):
    portfolio = portfolio_create(owner=user, name="P", cash=D(500))
    position = position_open(owner=user, ticker="ZIM", qty=D(0), cash=D(100),
                             portfolio=portfolio.id)
    portfolio_transfer(owner=user, portfolio_id=portfolio.id, source="portfolio",
                       target=position.id, amount=D(200))
    portfolio_cash_move(owner=user, portfolio_id=portfolio.id, amount=D(-50))
    position_cash_move(owner=user, position_id=position.id, amount=D("0.5"))
    assert ledger_verify().differences == []
    Portfolio.objects.update(cash=D(1000))
    Position.objects.update(cash=D(1))
    found = {(d.position_id, d.field, d.stored, d.expected) for d in ledger_verify().differences}
    assert found == {(portfolio.id, "cash", D(1000), D(250)),
                     (position.id, "cash", D(1), D("300.5"))}
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("verify_ledger", stdout=out)
    assert f"DIFFERENCE {portfolio.id} cash: stored 1000" in out.getvalue()
