"""``verify_ledger`` reads the books in one snapshot: a write that commits while it runs is
seen whole or not at all, so ``--record-alerts`` never alerts sound books (a portfolio's alert is
its own event, which its owner reads at GET /v1/alerts and its webhooks receive)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from events.models import Event
from positions.models import Portfolio
from positions.portfolios.services import portfolio_cash_move, portfolio_create
from positions.workflows import ledger
from positions.workflows.tests.test_alerts import verify  # the command, its exit code and output

D = Decimal


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_deposit_committed_while_the_check_runs_does_not_alert_a_sound_portfolio(
        user, api, monkeypatch):
    fund = portfolio_create(owner=user, name="Core", cash=D("500"))
    # The owner deposits 50 through the API while the nightly check runs: here at the moment
    # the check has read the portfolios' cash movements and is about to read their rows (on a
    # large log the movements take a while to stream; the deposit is on its own connection).
    deposited: list = []

    def deposit():
        try:
            portfolio_cash_move(owner=user, portfolio_id=fund.pk, amount=D("50"))
            deposited.append(True)
        finally:
            connection.close()

    class Rows:
        @property
        def objects(self):
            if not deposited:
                thread = threading.Thread(target=deposit)
                thread.start()
                thread.join(10)
            return Portfolio.objects

    monkeypatch.setattr(ledger, "Portfolio", Rows())
    code, out = verify("--record-alerts")
    assert deposited == [True]
    monkeypatch.undo()

    # the books were right all along: the deposit and its event committed together
    assert verify()[0] == 0
    # ... and the nightly run said so, recording nothing on the portfolio
    assert Event.objects.filter(type="ledger_difference", portfolio_id=fund.pk).count() == 0, out
    assert [a["type"] for a in api.get("/v1/alerts").json()["alerts"]] == []
