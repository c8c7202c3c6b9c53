"""The research API: ``POST /v1/backtests`` (the backtest of ``manage.py backtest`` over a posted
series or a bundled sample, answering the same JSON document; above the synchronous size limit, a
job) and the ``/v1/sweeps`` endpoints (sweeps, walk-forwards and backtest jobs as background
jobs: start, poll, cancel, their files and heatmap).

Serializers check each field's type and document the schema; the request itself is read by
:mod:`positions.research.requests` (the same reading the worker makes) and the job created by
:mod:`positions.research.services`."""

from __future__ import annotations

import contextlib
import io
from decimal import Decimal

from django.conf import settings
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.models import Side
from positions.research import requests, services, worker
from positions.research.history import history_for, with_end
from positions.research.models import JobKind, JobStatus
from positions.serializers import StrategyFields
from positions.strategy import rules
from positions.strategy.backtest import benchmarks, budget, data, engine, report
from positions.strategy.backtest import portfolio as pf
from positions.strategy.research import sweep as research
from volbal.api import MissingBeforeNotAllowed, keyset_page
from volbal.errors import ApiError
from volbal.fields import Number
from volbal.framing import too_large
from volbal.parsers import StrictJSONParser
from volbal.schema import (
    PAGING,
    errors,
    idempotency_header,
    one_of,
    page_of,
    read_errors,
    write_errors,
)
from volbal.throttling import EXPENSIVE


@contextlib.contextmanager
def answered():
    """A request the research code refuses, answered as an API error (its code, sentence,
    fields and status)."""
    try:
        yield
    except requests.RequestError as exc:
        raise ApiError(exc.code, exc.message, status=exc.status, fields=exc.fields) from None


# --------------------------------------------------------------------------------------------
# POST /v1/backtests
# --------------------------------------------------------------------------------------------


MAX_BARS = requests.MAX_BARS
MAX_BODY_BYTES = 16 * 1024 * 1024  # far above 100,000 bars: larger bodies are refused unread
_MAX_DIVIDENDS = requests.MAX_DIVIDENDS

_RATIO = {"max_digits": 30, "decimal_places": 12}


class PricePointSerializer(serializers.Serializer):
    ts = serializers.CharField(help_text="ISO 8601 date or time of the bar, e.g. `2020-01-02` "
                                         "or `2020-01-02T09:30:00`. Ascending, no repeats.")
    price = serializers.DecimalField(help_text="Close of the bar, > 0.", **_RATIO)


class DividendInSerializer(serializers.Serializer):
    ex_date = serializers.DateField()
    pay_date = serializers.DateField(required=False, help_text="Defaults to the ex-date.")
    dps = serializers.DecimalField(help_text="Dividend per share, > 0.", **_RATIO)


class BacktestSetupSerializer(StrategyFields):
    """The strategy (every field optional, with the position's own bounds) and the run's
    set-up."""

    start = serializers.CharField(required=False, help_text="First date or time (ISO).")
    end = serializers.CharField(required=False,
                                help_text="Last date or time (ISO; a date includes the day).")
    cash = Number(max_digits=22, decimal_places=6, required=False, default=Decimal("10000"),
                  gt=0, help_text="Starting cash, > 0 (default 10000).")
    start_weight = Number(max_digits=12, decimal_places=8, required=False,
                          default=Decimal("0.5"), min_value=0, max_value=1,
                          help_text="Stock weight bought on the first bar, 0 to 1 (default 0.5).")
    slippage_bps = Number(max_digits=12, decimal_places=6, required=False, default=Decimal("0"),
                          min_value=0, lt=10000,
                          help_text="Each fill's price worsened by this many basis points, "
                                    "0 ≤ bps < 10000 (default 0).")
    fill = serializers.ChoiceField(
        choices=engine.FILLS, required=False, default="same_bar",
        help_text="same_bar: a proposal fills at its own bar's price; next_bar: it is placed as "
                  "an open order and fills at the next bar's price (trimmed to what the cash or "
                  "shares then cover); limit: the ladder's buy and sell rungs rest as limit "
                  "orders and fill on a later bar whose range reaches them, at the limit or at "
                  "a gapping open (a bundled sample's Open/High/Low; posted prices are closes), "
                  "and the answer adds `comparison` with the same series under next_bar.")


def _sample_field(**kw):
    return serializers.ChoiceField(
        choices=data.SAMPLE_TICKERS,
        help_text="A bundled daily series 2000-2013 (dividends derived from adjusted closes) "
                  "instead of `prices`.", **kw)


def _ticker_field(**kw):
    return serializers.CharField(
        max_length=16, help_text="A ticker whose raw daily bars, splits and dividends come "
        "from the service's market-data feed (cached: a second run of the same range asks "
        "the feed nothing); needs `start`.", **kw)


class BacktestParamsSerializer(BacktestSetupSerializer):
    # Everything but the series and the dividends (those are checked by hand: fast).
    sample = _sample_field(required=False)
    ticker = _ticker_field(required=False)


def _dividends_field():
    return DividendInSerializer(many=True, required=False, max_length=_MAX_DIVIDENDS,
                                help_text="Dividends (replacing a sample's derived ones).")


class BacktestOnPricesSerializer(BacktestSetupSerializer):
    """A backtest over a posted price series."""

    prices = PricePointSerializer(many=True, min_length=1, max_length=MAX_BARS,
                                  help_text=f"The series, 1 to {MAX_BARS:,} bars.")
    dividends = _dividends_field()


class BacktestOnSampleSerializer(BacktestSetupSerializer):
    """A backtest over a bundled sample."""

    sample = _sample_field()
    dividends = _dividends_field()


class BacktestOnTickerSerializer(BacktestSetupSerializer):
    """A backtest over a ticker's history from the market-data feed."""

    ticker = _ticker_field()
    dividends = _dividends_field()


class PortfolioHoldingSerializer(serializers.Serializer):
    """One holding: exactly one of `sample`, `ticker` or `series`, and its target weight."""

    sample = _sample_field(required=False)
    ticker = _ticker_field(required=False)
    series = PricePointSerializer(many=True, required=False, min_length=1, max_length=MAX_BARS,
                                  help_text="A posted series, as `prices` takes it.")
    name = serializers.CharField(required=False, max_length=32,
                                 help_text="A posted series' name (default `series N`).")
    weight = Number(max_digits=30, decimal_places=12,
                    help_text="Target weight, 0 < w ≤ 1; the weights sum to at most 1, the "
                              "rest is unallocated cash.")
    dividends = _dividends_field()


class PortfolioSerializer(serializers.Serializer):
    holdings = PortfolioHoldingSerializer(
        many=True, min_length=1, max_length=requests.MAX_HOLDINGS,
        help_text=f"1 to {requests.MAX_HOLDINGS} holdings, no two the same; each runs the "
                  "strategy on weight × cash. Cut to the dates they all have.")
    rebalance = serializers.ChoiceField(
        choices=rules.REBALANCES, required=False, default="never",
        help_text="When cash moves between the unallocated cash and the holdings toward the "
                  "weights: a period's first bar, or `band` (a drift beyond `rebalance_band`).")
    rebalance_band = Number(max_digits=30, decimal_places=12, required=False,
                            help_text="With `band`: the absolute weight drift that triggers "
                                      "it.")


class BacktestOnPortfolioSerializer(BacktestSetupSerializer):
    """A portfolio backtest: several holdings, cash moved toward their weights."""

    portfolio = PortfolioSerializer()


BacktestRequestSerializer = one_of(
    "BacktestRequest", BacktestOnPricesSerializer, BacktestOnSampleSerializer,
    BacktestOnTickerSerializer, BacktestOnPortfolioSerializer,
    help_text="Exactly one of `prices` (a posted series), `sample` (a bundled one), `ticker` "
              "(history from the market-data feed) or `portfolio` (several holdings).")


BACKTEST_ORDER_KINDS = ("opening", *rules.KINDS)  # "opening": the first bar's purchase


# Instantiated once per field that holds it: one instance bound to two fields is documented
# under only one of them (BacktestResult lacked `metrics`).
class BacktestMetricsSerializer(serializers.Serializer):
    """A run's metrics: returns and risk as fractions, counts, and the final balances."""

    total_return = serializers.FloatField()
    cagr = serializers.FloatField(allow_null=True)
    volatility = serializers.FloatField(allow_null=True)
    sharpe = serializers.FloatField(allow_null=True)
    sortino = serializers.FloatField(allow_null=True)
    max_drawdown = serializers.FloatField()
    max_drawdown_days = serializers.FloatField()
    buys = serializers.IntegerField()
    sells = serializers.IntegerField()
    commissions = serializers.FloatField()
    dividends = serializers.FloatField()
    turnover = serializers.FloatField(allow_null=True)
    in_band_share = serializers.FloatField()
    final_qty = serializers.FloatField()
    final_cash = serializers.FloatField()
    final_value = serializers.FloatField()



def _metrics_field(help_text: str):
    """A new instance of the metrics serializer (one instance per field)."""
    return BacktestMetricsSerializer(help_text=help_text)


_BENCHMARKS = inline_serializer(
    name="BacktestBenchmarks",
    fields={name: _metrics_field(f"{benchmarks.LABELS[name]}: {benchmarks.DESCRIPTIONS[name]}.")
            for name in benchmarks.NAMES},
    help_text="Three benchmarks over the same bars, credited dividends and paying commissions "
              "as the strategy does.",
)


def _by_run(name: str):
    return inline_serializer(
        name=name,
        fields={k: serializers.FloatField() for k in ("strategy", *benchmarks.NAMES)},
    )


_ATTRIBUTION = inline_serializer(
    name="BacktestAttribution",
    fields={
        "strategy_return": serializers.FloatField(help_text="R: the strategy's total return."),
        "held_mix_return": serializers.FloatField(help_text="H: the held mix's total return."),
        "fixed_mix_return": serializers.FloatField(help_text="F: the fixed mix's total return."),
        "excess_over_held_mix": serializers.FloatField(help_text="R - H."),
        "rebalancing_premium": serializers.FloatField(
            help_text="F - H: what rebalancing monthly earned over holding the starting mix."),
        "trigger_timing": serializers.FloatField(
            help_text="R - F: what the anchor and band rules added on top."),
        "dividends": _by_run("BacktestDividendShares"),
        "commissions": _by_run("BacktestCommissionShares"),
    },
    help_text="The excess over the held mix split into the rebalancing premium and the "
              "trigger's timing; dividends received and commissions paid as fractions of the "
              "starting cash.",
)

_RESULT = inline_serializer(
    name="BacktestResult",
    fields={
        "metrics": BacktestMetricsSerializer(help_text="The strategy's results."),
        "buy_and_hold": BacktestMetricsSerializer(
            help_text="The starting mix held (benchmarks.held_mix under its former name)."),
        "benchmarks": _BENCHMARKS,
        "attribution": _ATTRIBUTION,
        "comparison": inline_serializer(
            name="BacktestFillComparison",
            fields={k: inline_serializer(
                name=f"BacktestFillSummary{k.title().replace('_', '')}",
                fields={"total_return": serializers.FloatField(),
                        "trades": serializers.IntegerField(
                            help_text="Orders, the opening included."),
                        "avg_slippage_to_trigger_bps": serializers.FloatField(
                            allow_null=True,
                            help_text="The orders' average distance from their ladder rung, "
                                      "in basis points, positive when worse; null with no "
                                      "order after the opening.")},
                help_text=f"The same series under {k}.") for k in ("limit", "next_bar")},
            required=False,
            help_text="Only with `fill` `limit`: the run beside the same configuration and "
                      "series under next_bar."),
        "notes": serializers.ListField(
            child=serializers.CharField(),
            help_text="Why some figures are null, e.g. a run too short to annualise (CAGR, "
                      "volatility, Sharpe, Sortino and turnover need at least 60 calendar days "
                      "and 20 bars)."),
        "orders": inline_serializer(
            name="BacktestOrder",
            fields={
                "date": serializers.CharField(),
                "side": serializers.ChoiceField(choices=Side.choices),
                "qty": serializers.FloatField(),
                "price": serializers.FloatField(),
                "commission": serializers.FloatField(),
                "kind": serializers.ChoiceField(
                    choices=BACKTEST_ORDER_KINDS,
                    help_text="`opening` for the first bar's purchase, else the proposal's kind."),
            },
            many=True,
        ),
    },
)


def _figures(name: str, extra: tuple[str, ...] = ()):
    return inline_serializer(name=name, fields={
        k: serializers.FloatField(allow_null=True)
        for k in ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                  "max_drawdown_days", *extra)})


_PORTFOLIO_RESULT = inline_serializer(
    name="PortfolioBacktestResult",
    fields={
        "start": serializers.CharField(), "end": serializers.CharField(),
        "bars": serializers.IntegerField(help_text="The bars the holdings all have."),
        "metrics": _figures("PortfolioMetrics", (
            "final_value", "final_free_cash", "rebalances", "rebalance_turnover",
            "rebalance_turnover_per_year")),
        "benchmarks": inline_serializer(name="PortfolioBenchmarks", fields={
            name: _figures(f"PortfolioBenchmark{name.title().replace('_', '')}")
            for name in pf.BENCHMARKS},
            help_text="held: each holding's cash in its asset, held; fixed_mix: the weights "
                      "restored across the assets and cash at the rule's period (monthly for "
                      "never and band)."),
        "holdings": inline_serializer(name="PortfolioHoldingResult", many=True, fields={
            "name": serializers.CharField(), "weight": serializers.FloatField(),
            "cash": serializers.FloatField(help_text="weight × cash, rounded down."),
            "moved_in": serializers.FloatField(help_text="The cash the rebalances put in."),
            "final_value": serializers.FloatField(),
            "contribution": serializers.FloatField(
                help_text="Its gain as a fraction of the starting cash."),
            "orders": serializers.IntegerField()}),
        "notes": serializers.ListField(
            child=serializers.CharField(),
            help_text="Why the annualised figures are null (a run shorter than 60 days or 20 "
                      "bars), as a single backtest's notes say it."),
        "rebalances": inline_serializer(name="PortfolioRebalance", many=True, fields={
            "date": serializers.CharField(),
            "moves": serializers.DictField(child=serializers.FloatField(),
                                           help_text="Holding name -> cash moved in."),
            "free_cash": serializers.FloatField()}),
    },
)


def _too_large() -> ApiError:
    body = too_large(MAX_BODY_BYTES)
    return ApiError(body["detail"], body["message"], status=413)


class BacktestJSONParser(BaseParser):
    """The project's strict JSON, with this endpoint's own size limit.

    REST framework hands a ``JSONParser`` the whole body through ``request.body``, which stops
    at ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB: about 50,000 bars). This parser reads the stream
    itself, up to :data:`MAX_BODY_BYTES`, and answers 413 beyond."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_BODY_BYTES:
            raise _too_large()
        return StrictJSONParser().parse(io.BytesIO(raw), media_type, parser_context)


class BacktestView(APIView):
    """Backtest the strategy over a posted series or a bundled sample
    (docs/backtests.md#through-the-api)."""

    parser_classes = [BacktestJSONParser]
    # Idempotency-Key honoured (orders.middleware): a backtest above the synchronous limit
    # creates a job, which a replay must not create twice; a synchronous answer replays too.
    max_body_bytes = MAX_BODY_BYTES  # volbal.framing answers 413 beyond, unread
    throttle_scope = EXPENSIVE  # per-user rate, 429 beyond (volbal/throttling.py)

    @extend_schema(
        operation_id="backtest_run",
        summary="Backtest the strategy against three benchmarks",
        description=(
            "Runs the live evaluation rules over a price series: the posted `prices` (at most "
            f"{MAX_BARS:,} bars) or a bundled `sample`, with optional `dividends`. Every "
            "strategy field may be given (fractions, not percent); `cash` (default 10000), "
            "`start_weight` (0.5), `slippage_bps` (0) and `fill` (`same_bar`) set up the run. "
            "Within the synchronous limit nothing is stored. A backtest that may evaluate "
            "the rules more than "
            "`VOLBAL_BACKTEST_MAX_EVALUATIONS` times (20,000: bars, capped by days x "
            "`max_orders_per_day`; with `fill` `limit`, every bar and 170 more for each bar that "
            "may change the book, as the resting pair is derived again) runs as a job on the "
            "sweeps' queue instead: 202 with the "
            "job (`kind` `backtest`), polled at `GET /v1/sweeps/{id}` (its `results` are then "
            "this answer), cancelled at `POST /v1/sweeps/{id}/cancel`; `Idempotency-Key` is "
            "honoured. "
            "The answer holds the strategy's metrics, its three benchmarks' (the starting mix "
            "held, the stock held, the fixed mix rebalanced monthly; `buy_and_hold` is the "
            "held mix under its former name), the attribution of the excess return, notes and "
            "every order."
        ),
        request=BacktestRequestSerializer,
        parameters=[idempotency_header(required=False)],
        responses={
            200: OpenApiResponse(one_of(
                "BacktestAnswer", _RESULT, _PORTFOLIO_RESULT,
                help_text="A single backtest's result, or with `portfolio` a portfolio "
                          "backtest's (always answered at once: 413 `portfolio_too_large` "
                          "above the synchronous limit)."),
                description="The backtest."),
            # SweepSerializer's component (below)
            202: OpenApiResponse({"$ref": "#/components/schemas/Sweep"},
                                 description="Above the synchronous size limit: the backtest "
                                             "job, queued."),
            **write_errors((409, "idempotency_signature_mismatch"),
                           (413, "series_too_large, request_too_large or "
                                 "portfolio_too_large"),
                           (429, "research_quota_exceeded")),
        },
        examples=[
            OpenApiExample("A bundled sample", request_only=True,
                           value={"sample": "IBM", "start": "2005-01-01", "trigger_pct": 0.05}),
            OpenApiExample("A posted series", request_only=True, value={
                "prices": [{"ts": "2024-01-02", "price": 100}, {"ts": "2024-01-03", "price": 97},
                           {"ts": "2024-01-04", "price": 103}],
                "min_notional": 0,
            }),
        ],
        tags=["backtests"],
    )
    def post(self, request):
        body = request.data
        if not isinstance(body, dict):
            raise ApiError("validation_error", "Invalid input. The body must be a JSON object.",
                           fields={"non_field_errors": "The body must be a JSON object."})
        if "portfolio" in body:
            return self.portfolio(body)
        ser = BacktestParamsSerializer(
            data={k: v for k, v in body.items() if k not in ("prices", "dividends")})
        ser.is_valid(raise_exception=True)
        options = with_end(requests.backtest_options(ser.validated_data))
        with answered():
            requests.backtest_source(options, body)  # before anything is fetched
            parsed = requests.backtest(options, body, history_for(options))
            problem = budget.work_problem(parsed.series, parsed.cfg.max_orders_per_day,
                                          limit=settings.VOLBAL_BACKTEST_MAX_EVALUATIONS,
                                          fill=parsed.setup.fill)
            if not problem:
                try:  # a limit run's derivations capped too: past the limit, a job after all
                    with engine.evaluation_cap(settings.VOLBAL_BACKTEST_MAX_EVALUATIONS):
                        return Response(report.document(worker.backtest_run(parsed)))
                except engine.WorkExceeded:
                    pass
            # too long to answer now: a job on the queue, as a sweep is
            job = services.backtest_job_create(owner=request.user, request=body,
                                               options=options, parsed=parsed)
            out = job_body(request, job)
            return Response(out, status=202, headers={"Location": out["links"]["self"]})

    def portfolio(self, body):
        """A portfolio backtest (docs/backtests.md#portfolio-backtests): answered now, its
        holdings' work within the synchronous limit together (no job for it yet)."""
        ser = BacktestParamsSerializer(data={k: v for k, v in body.items() if k != "portfolio"})
        ser.is_valid(raise_exception=True)
        options = requests.backtest_options(ser.validated_data)
        with answered():
            if options.get("sample") or options.get("ticker") or "prices" in body:
                raise requests.RequestError(
                    "validation_error", "Invalid input. A portfolio's series are its "
                    "holdings': give no prices, sample or ticker beside it.",
                    fields={"portfolio": "Give the series in portfolio.holdings."})
            spec = requests.portfolio(body["portfolio"], options)
            histories = {t: history_for(with_end({"ticker": t, "start": options.get("start"),
                                                  "end": options.get("end")}))
                         for t in spec.tickers}
            parsed = requests.portfolio_backtest(options, spec, histories)
            work = sum(budget.expected_evaluations(h.series, parsed.cfg.max_orders_per_day,
                                                   parsed.setup.fill)
                       for h in parsed.holdings)
            limit = settings.VOLBAL_BACKTEST_MAX_EVALUATIONS
            if work > limit:
                raise requests.RequestError(
                    "portfolio_too_large", f"This portfolio may evaluate the strategy {work:,} "
                    f"times over its holdings; at most {limit:,} evaluations are accepted per "
                    "request: shorten the series (start, end), hold fewer, or lower "
                    "max_orders_per_day.", status=413)
            try:  # its holdings' resting pairs capped together too
                with engine.evaluation_cap(limit):
                    run = worker.portfolio_run(parsed)
            except engine.WorkExceeded:
                raise requests.RequestError(
                    "portfolio_too_large", f"This portfolio's resting limit orders took more "
                    f"than {limit:,} evaluations of the strategy to place; at most {limit:,} are "
                    "accepted per request: shorten the series (start, end), hold fewer, or use "
                    "market fills.", status=413) from None
        return Response(pf.document(run, parsed.setup.cash))


# --------------------------------------------------------------------------------------------
# /v1/sweeps: research jobs
# --------------------------------------------------------------------------------------------


NOT_FOUND = errors((404, "sweep_not_found"))
# Why a job of another kind than a sweep has no heatmap, by its kind.
NO_HEATMAP = {JobKind.WALKFORWARD: "A walk-forward has no heatmap; its windows are in the "
                                     "results.",
              JobKind.BACKTEST: "A backtest job has no heatmap; its daily equity is in its "
                                  "csv and xlsx."}
MAX_TOP = 100


@extend_schema_field({"oneOf": [
    {"type": "string", "example": "0.02:0.08:0.02"},
    {"type": "array", "minItems": 1, "items": {"oneOf": [{"type": "number"}, {"type": "string"}]}},
]})
class GridValues(serializers.Field):
    """One grid field's values: ``"start:stop:step"``, ``"v1,v2,..."`` or a list (numbers
    stay exact: they become the command's ``--grid`` text)."""

    def to_internal_value(self, data):
        ok = isinstance(data, str) or (
            isinstance(data, list) and data
            and all(isinstance(v, (str, int, Decimal)) and not isinstance(v, bool)
                    for v in data))
        if not ok:
            raise serializers.ValidationError(
                "Give \"start:stop:step\", \"v1,v2,...\" or a list of values.")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(PortfolioSerializer)
class PortfolioJobField(serializers.Field):
    """A job's ``portfolio``, kept as posted: research.requests.portfolio reads it (one parser
    with POST /v1/backtests and the commands), the worker again from the stored request."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected an object with holdings, rebalance and "
                                              "rebalance_band.")
        return data

    def to_representation(self, value):
        return value


class SweepRequestSerializer(BacktestSetupSerializer):
    """A sweep or walk-forward job: the grid, the series, the ranking metric (and the windows
    of a walk-forward), with every strategy field off the grid and the run's set-up as a
    backtest takes them."""

    # A backtest job is started by POST /v1/backtests, not here.
    kind = serializers.ChoiceField(choices=[JobKind.SWEEP, JobKind.WALKFORWARD],
                                   help_text="`sweep` (every cell of the grid) or `walkforward` "
                                             "(rolling train/test windows).")
    series = serializers.ListField(
        child=serializers.ChoiceField(choices=data.SAMPLE_TICKERS), min_length=1,
        max_length=len(data.SAMPLE_TICKERS), required=False,
        help_text="Bundled samples to run on (a walk-forward takes one); or `ticker`.")
    ticker = _ticker_field(required=False)
    portfolio = PortfolioJobField(
        required=False,
        help_text="One portfolio swept or walked forward as a series is: its holdings "
                  "(bundled `sample`s or `ticker`s with `start`; no posted series) and rebalance "
                  "rule, as POST /v1/backtests takes them; each cell is a portfolio backtest, "
                  "ranked on the portfolio's figures. Not with `series` or `ticker`.")
    grid = serializers.DictField(
        child=GridValues(), allow_empty=False,
        help_text="Strategy field -> its values: `\"start:stop:step\"` (inclusive), "
                  "`\"v1,v2,...\"` or a list; the cells are every combination (as `manage.py "
                  "sweep --grid`).")
    metric = serializers.ChoiceField(choices=research.CELL_METRICS, default="sharpe",
                                     help_text="The ranking metric, averaged over the series.")
    top = serializers.IntegerField(min_value=1, max_value=MAX_TOP, default=10,
                                   help_text="How many ranked cells to show and re-run exact.")
    exact = serializers.BooleanField(default=False,
                                     help_text="Every cell on the exact Decimal path (default: "
                                               "floats, the top cells re-run exact).")
    train = serializers.CharField(required=False, max_length=16,
                                  help_text="Walk-forward train window: bars (750) or a span "
                                            "(90d, 6m, 3y).")
    test = serializers.CharField(required=False, max_length=16,
                                 help_text="Walk-forward test window, the step between windows.")


class SweepSerializer(serializers.Serializer):
    id = serializers.CharField()
    kind = serializers.ChoiceField(choices=JobKind.choices)
    status = serializers.ChoiceField(choices=JobStatus.choices)
    progress = serializers.DictField(help_text=(
        "`done` and `total` in `unit`: `runs` (backtests of one cell on one series, per "
        "window) or a backtest job's `bars`; `fraction`; and for a sweep or walk-forward the "
        "same runs as `cells` and `exact_reruns` (each `{done, total}`: every cell, then the "
        "top cells again on the exact path unless `exact`), null for a backtest job."))
    params = serializers.DictField(help_text="The request, normalised (a backtest job's without "
                                             "its series: `bars` and `dividends` count them).")
    error = serializers.CharField(allow_blank=True)
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    ranked = serializers.ListField(
        child=serializers.DictField(), allow_null=True,
        help_text="A sweep's top cells, best first (rank, cell, params, score, score_exact, "
                  "stability, per series metrics); a walk-forward's windows. Null until done "
                  "(and for a backtest job).")
    results = serializers.DictField(
        allow_null=True, help_text="The rest of the results: best cell, benchmarks, invalid "
                                   "cells (sweep); the stitched out-of-sample run (walk-forward); "
                                   "a backtest job's answer, the document `POST /v1/backtests` "
                                   "answers with 200 (BacktestResult).")
    links = serializers.DictField(
        child=serializers.CharField(allow_null=True),
        help_text="`self`, `cancel`, and once succeeded `csv`, `xlsx` (every metric of every "
                  "cell and series; a backtest job's daily equity and its workbook) and "
                  "`heatmap` (a sweep over two or more fields).")


def job_body(request, sweep) -> dict:
    """A job as the API shows it (also a backtest job's 202 from ``POST /v1/backtests``)."""
    def url(name):
        path = reverse(f"sweep-{name}", kwargs={"pk": sweep.id})
        return request.build_absolute_uri(path)

    done = sweep.status == JobStatus.SUCCEEDED
    results = dict(sweep.results or {}) if done else None
    ranked = None
    if results is not None and sweep.kind != JobKind.BACKTEST:
        ranked = results.pop("top", None) if sweep.kind == JobKind.SWEEP \
            else results.pop("windows", None)
    heatmap = done and sweep.kind == JobKind.SWEEP and len(sweep.params["grid"]) >= 2
    return {
        "id": sweep.id,
        "kind": sweep.kind,
        "status": sweep.status,
        "progress": services.progress_of(sweep),
        "params": sweep.params,
        "error": sweep.error,
        "cancel_requested": sweep.cancel_requested,
        "created_at": sweep.created_at,
        "started_at": sweep.started_at,
        "finished_at": sweep.finished_at,
        "ranked": ranked,
        "results": results,
        "links": {
            "self": url("detail"),
            "cancel": url("cancel"),
            "csv": url("results-csv") if done else None,
            "xlsx": url("results-xlsx") if done else None,
            "heatmap": url("heatmap") if heatmap else None,
        },
    }


def _finished(sweep):
    if sweep.status != JobStatus.SUCCEEDED:
        raise ApiError("sweep_not_finished",
                       f"Sweep {sweep.id} is {sweep.status}; its results exist once it has "
                       "succeeded.", status=409)


_BINARY = {"type": "string", "format": "binary"}


class SweepViewSet(MissingBeforeNotAllowed, viewsets.ViewSet):
    lookup_value_regex = "[^/]+"

    @property
    def throttle_scope(self):
        # Starting a job and drawing a picture cost; polling a job's status does not.
        return EXPENSIVE if getattr(self, "action", None) in ("create", "heatmap") else None

    @extend_schema(
        summary="Start a sweep or walk-forward job",
        description=(
            "Checks the request as `manage.py sweep`/`walkforward` do, stores the job and "
            "queues it; a worker runs it (202). Poll `GET /v1/sweeps/{id}` for its status and "
            "progress, then its ranked cells and the links to the files and the heatmap."),
        request=SweepRequestSerializer,
        parameters=[idempotency_header(required=False)],
        responses={202: SweepSerializer, 200: SweepSerializer,
                   **write_errors((409, "idempotency_signature_mismatch"),
                                 (429, "throttled or research_quota_exceeded"))},
        examples=[OpenApiExample("A sweep on IBM", request_only=True, value={
            "kind": "sweep", "series": ["IBM"], "start": "2005-01-01",
            "grid": {"trigger_pct": "0.02:0.08:0.02", "guard_low": [0.2, 0.3]}}),
            OpenApiExample("A walk-forward", request_only=True, value={
                "kind": "walkforward", "series": ["IBM"], "train": "3y", "test": "1y",
                "grid": {"trigger_pct": "0.02:0.08:0.02"}, "metric": "cagr"})],
        tags=["sweeps"],
    )
    def create(self, request):
        ser = SweepRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        with answered():
            params = with_end(requests.normalise(ser.validated_data))
            sweep = services.job_create(owner=request.user, params=params)
        body = job_body(request, sweep)
        return Response(body, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": body["links"]["self"]})

    @extend_schema(summary="Your sweep jobs, oldest first", parameters=[*PAGING],
                   responses={200: page_of("SweepPage", {"sweeps": SweepSerializer(many=True)}),
                              **read_errors()},
                   tags=["sweeps"])
    def list(self, request):
        items, next_cursor = keyset_page(request, services.jobs_of(owner=request.user))
        return Response({"sweeps": [job_body(request, s) for s in items], "next": next_cursor})

    @extend_schema(summary="A sweep job: status, progress, ranked cells, links",
                   responses={200: SweepSerializer, **NOT_FOUND, **read_errors()},
                   tags=["sweeps"])
    def retrieve(self, request, pk=None):
        return Response(job_body(request, services.job_get(owner=request.user, sweep_id=pk)))

    @extend_schema(summary="Cancel a sweep job",
                   description="A queued job is cancelled at once; a running one stops at its "
                               "next chunk of cells and ends `cancelled`; a finished one is "
                               "answered as it is.",
                   request=None, parameters=[idempotency_header(required=False)],
                   responses={200: SweepSerializer, **NOT_FOUND,
                              **write_errors((409, "idempotency_signature_mismatch"))},
                   tags=["sweeps"])
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(job_body(request, services.job_cancel(owner=request.user, sweep_id=pk)))

    @extend_schema(
        summary="A sweep's heatmap picture",
        description="The metric over two grid parameters, the others held at the best cell's "
                    "values (the picture says which), the best cell outlined.",
        parameters=[
            OpenApiParameter("x", str, description="x parameter (default the first grid)."),
            OpenApiParameter("y", str, description="y parameter (default the second grid)."),
            OpenApiParameter("metric", str, enum=[*research.CELL_METRICS],
                             description="Default the ranking metric."),
        ],
        responses={(200, "image/png"): OpenApiResponse(_BINARY, description="PNG"),
                   **NOT_FOUND,
                   **read_errors((400, "validation_error"), (409, "sweep_not_finished"),
                                 (429, "throttled"))},
        tags=["sweeps"],
    )
    @action(detail=True, methods=["get"], url_path="heatmap.png", url_name="heatmap")
    def heatmap(self, request, pk=None):
        sweep = services.job_get(owner=request.user, sweep_id=pk)
        _finished(sweep)
        if sweep.kind != JobKind.SWEEP:
            msg = NO_HEATMAP[sweep.kind]
            raise ApiError("validation_error", f"Invalid input. {msg}",
                           fields={"kind": f"{sweep.kind}: {msg}"})
        q = request.query_params
        try:
            png = services.heatmap_png(sweep, q.get("x"), q.get("y"), q.get("metric"))
        except research.GridError as exc:
            names = [n for n in ("x", "y", "metric") if q.get(n) and repr(q.get(n)) in str(exc)]
            raise ApiError("validation_error", f"Invalid input. {exc}",
                           fields={n: str(exc) for n in names or ["x", "y"]}) from None
        return HttpResponse(png, content_type="image/png")

    @extend_schema(summary="Every metric of every cell and series, CSV",
                   responses={(200, "text/csv"): OpenApiResponse(_BINARY, description="CSV"),
                              **NOT_FOUND, **read_errors((409, "sweep_not_finished"))},
                   tags=["sweeps"])
    @action(detail=True, methods=["get"], url_path="results.csv", url_name="results-csv")
    def results_csv(self, request, pk=None):
        sweep = services.job_get(owner=request.user, sweep_id=pk)
        _finished(sweep)
        resp = HttpResponse(sweep.results_csv, content_type="text/csv; charset=utf-8")
        resp["Content-Disposition"] = f'attachment; filename="{sweep.id}.csv"'
        return resp

    @extend_schema(
        summary="The results workbook (xlsx)",
        responses={(200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"):
                   OpenApiResponse(_BINARY, description="xlsx"),
                   **NOT_FOUND, **read_errors((409, "sweep_not_finished"))},
        tags=["sweeps"])
    @action(detail=True, methods=["get"], url_path="results.xlsx", url_name="results-xlsx")
    def results_xlsx(self, request, pk=None):
        sweep = services.job_get(owner=request.user, sweep_id=pk)
        _finished(sweep)
        resp = HttpResponse(bytes(sweep.results_xlsx), content_type=(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
        resp["Content-Disposition"] = f'attachment; filename="{sweep.id}.xlsx"'
        return resp
