"""``POST /v1/backtests``: the backtest of ``manage.py backtest`` over a posted series or a
bundled sample, answering the same JSON document (metrics, benchmarks, attribution, notes, orders).

The only module of the backtest package that imports Django (REST framework)."""

from __future__ import annotations

import dataclasses
import io
from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.models import Side
from positions.serializers import StrategyFields
from positions.strategy import rules
from positions.strategy.backtest import benchmarks, budget, data, engine, report
from volbal.errors import ApiError
from volbal.fields import Number
from volbal.framing import too_large
from volbal.parsers import StrictJSONParser
from volbal.schema import idempotency_header, one_of, write_errors
from volbal.throttling import EXPENSIVE

MAX_BARS = 100_000
MAX_BODY_BYTES = 16 * 1024 * 1024  # far above 100,000 bars: larger bodies are refused unread
_MAX_DIVIDENDS = 10_000

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
                  "shares then cover).")


def _sample_field(**kw):
    return serializers.ChoiceField(
        choices=data.SAMPLE_TICKERS,
        help_text="A bundled daily series 2000-2013 (dividends derived from adjusted closes) "
                  "instead of `prices`.", **kw)


class BacktestParamsSerializer(BacktestSetupSerializer):
    # Everything but the series and the dividends (those are checked by hand: fast).
    sample = _sample_field(required=False)


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


BacktestRequestSerializer = one_of(
    "BacktestRequest", BacktestOnPricesSerializer, BacktestOnSampleSerializer,
    help_text="Exactly one of `prices` (a posted series) or `sample` (a bundled one).")


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


def _invalid(field: str, message: str) -> ApiError:
    return ApiError("validation_error", f"Invalid input. {field}: {message}", status=400,
                    fields={field: message})


def _points(raw) -> list[tuple[str, object]]:
    if not isinstance(raw, list):
        raise _invalid("prices", "Expected a list of {ts, price} objects.")
    if len(raw) > MAX_BARS:
        raise ApiError("series_too_large",
                       f"The series has {len(raw):,} bars; at most {MAX_BARS:,} are accepted.",
                       status=413, fields={"prices": f"At most {MAX_BARS:,} bars."})
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"ts", "price"}:
            raise _invalid("prices", f"prices[{i}] must be an object with exactly ts and price.")
        price = item["price"]
        if isinstance(price, bool) or not isinstance(price, (int, float, Decimal)):
            raise _invalid("prices", f"prices[{i}].price must be a number.")
        out.append((item["ts"], price))
    return out


def _dividends(raw) -> list[data.Dividend]:
    if not isinstance(raw, list) or len(raw) > _MAX_DIVIDENDS:
        raise _invalid("dividends", "Expected a list of {ex_date, pay_date, dps} objects.")
    ser = DividendInSerializer(data=raw, many=True)
    if not ser.is_valid():
        first = next((i for i, e in enumerate(ser.errors) if e), 0)
        name, why = next(iter(ser.errors[first].items()))
        raise _invalid("dividends", f"dividends[{first}].{name}: {' '.join(map(str, why))}")
    out = []
    for i, d in enumerate(ser.validated_data):
        try:
            out.append(data.make_dividend(d["ex_date"], d.get("pay_date"), d["dps"],
                                          f"dividends[{i}]"))
        except data.DataError as exc:
            raise _invalid("dividends", str(exc)) from None
    return sorted(out, key=lambda d: (d.ex_date, d.pay_date))


class BacktestView(APIView):
    """Backtest the strategy over a posted series or a bundled sample (strategy.md, Flow E)."""

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
            "`max_orders_per_day`) runs as a job on the sweeps' queue instead: 202 with the "
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
            200: _RESULT,
            # positions.sweep_api.SweepSerializer's component (that module imports this one)
            202: OpenApiResponse({"$ref": "#/components/schemas/Sweep"},
                                 description="Above the synchronous size limit: the backtest "
                                             "job, queued."),
            **write_errors((409, "idempotency_signature_mismatch"),
                           (413, "series_too_large or request_too_large")),
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
        parsed = parse_request(request.data)
        problem = budget.work_problem(parsed.series, parsed.cfg.max_orders_per_day,
                                      limit=settings.VOLBAL_BACKTEST_MAX_EVALUATIONS)
        if problem:  # too long to answer now: a job on the queue, as a sweep is
            from positions import sweep_api, sweeps

            job = sweeps.backtest_create(owner=request.user, request=request.data,
                                         summary=parsed.summary, bars=len(parsed.series))
            body = sweep_api.job_body(request, job)
            return Response(body, status=202, headers={"Location": body["links"]["self"]})
        return Response(report.document(run(parsed)))


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A checked backtest request: what ``report.backtest`` takes, and the request without its
    series and dividends (``summary``, what a job shows of it)."""

    series: data.Series
    cfg: rules.Config
    setup: engine.Setup
    dividends: list
    summary: dict


def parse_request(body) -> Parsed:
    """A ``POST /v1/backtests`` body, checked (ApiError 400/413 naming the field): the one
    reading of the request, for the answer now and for a job's worker later."""
    if not isinstance(body, dict):
        raise ApiError("validation_error", "Invalid input. The body must be a JSON object.",
                       fields={"non_field_errors": "The body must be a JSON object."})
    params = {k: v for k, v in body.items() if k not in ("prices", "dividends")}
    ser = BacktestParamsSerializer(data=params)
    ser.is_valid(raise_exception=True)
    opts = ser.validated_data

    has_prices = "prices" in body
    if has_prices == ("sample" in opts):
        msg = "Give either prices or sample."
        raise ApiError("validation_error", f"Invalid input. {msg}",
                       fields={"prices": msg, "sample": msg})
    cfg_values = {f.name: opts[f.name] for f in dataclasses.fields(rules.Config)
                  if f.name in opts}
    cfg = rules.Config(**cfg_values)
    problems = rules.config_errors(cfg)
    setup = engine.Setup(cash=opts["cash"], start_weight=opts["start_weight"],
                         slippage_bps=opts["slippage_bps"], fill=opts["fill"])
    problems.update(engine.setup_errors(setup))
    if problems:
        name, why = next(iter(problems.items()))
        raise ApiError("validation_error", f"Invalid input. {name}: {why}",
                       fields=problems)

    try:
        if has_prices:
            series = data.series_from_points(_points(body["prices"]))
            dividends = []
        else:
            series, dividends = data.load_sample(opts["sample"])
    except data.DataError as exc:
        field = "prices" if has_prices else "sample"
        raise _invalid(field, str(exc)) from None
    if "dividends" in body:
        dividends = _dividends(body["dividends"])
    try:
        series = series.between(opts.get("start"), opts.get("end"))
    except data.DataError as exc:
        msg = str(exc)
        names = [n for n in ("start", "end") if msg.startswith(n)] or ["start", "end"]
        raise ApiError("validation_error", f"Invalid input. {msg}",
                       fields={n: msg for n in names}) from None
    summary = {k: v for k, v in body.items() if k not in ("prices", "dividends")}
    summary["bars"] = len(series)
    summary["dividends"] = len(dividends)
    return Parsed(series, cfg, setup, list(dividends), summary)


def run(parsed: Parsed, progress=None) -> report.Report:
    """The backtest of a checked request (its strategy and three benchmarks)."""
    try:
        return report.backtest(parsed.series, parsed.cfg, parsed.setup, parsed.dividends,
                               progress=progress)
    except engine.SetupError as exc:
        raise ApiError("validation_error", f"Invalid input. {exc}", fields=exc.fields) \
            from None
