"""manage.py rebalance: rebalance portfolios' cash toward their target weights by hand."""

from __future__ import annotations

from django.core.management.base import CommandError

from events.actor import ActorCommand
from positions.models import Portfolio
from positions.portfolios.services import portfolio_rebalance, portfolios_rebalance_due
from volbal.errors import DomainError


class Command(ActorCommand):  # its events name it (events.actor)
    help = ("Move cash between each portfolio's unallocated cash and its positions toward "
            "their target weights (docs/strategy.md#portfolios): cash only, never shares; "
            "each move a cash_transferred event with reason rebalance, one transaction per "
            "portfolio. --portfolio names one (default: every portfolio); --due only those "
            "whose rule says so now, as the trade cycle does.")

    def add_arguments(self, parser):
        parser.add_argument("--portfolio", action="append", default=[], metavar="PFL_ID",
                            help="Rebalance this portfolio (repeatable; default: all).")
        parser.add_argument("--due", action="store_true",
                            help="Only the portfolios due now by their rule (the trade "
                            "cycle's step); without it every named portfolio is rebalanced.")

    def handle(self, *args, portfolio=(), due=False, **options):
        if due and not portfolio:
            results, failed = portfolios_rebalance_due(), []
        else:
            ids = portfolio or list(Portfolio.objects.order_by("id")
                                    .values_list("id", flat=True))
            results, failed = [], []
            for pid in ids:
                try:
                    results.append(portfolio_rebalance(portfolio_id=pid, when_due=due))
                except DomainError as exc:
                    failed.append(f"{pid}: {exc.code}: {exc.message}")
        for done in results:
            self.stdout.write(done.text())
        if not results and not failed:
            self.stdout.write("No portfolio.")
        for line in failed:
            self.stderr.write(line)
        if failed:
            raise CommandError(f"{len(failed)} portfolio(s) not rebalanced")
