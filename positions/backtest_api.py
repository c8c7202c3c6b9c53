"""``POST /v1/backtests``: the backtest of ``manage.py backtest`` over a posted series or a
bundled sample, answering the same JSON document (metrics, buy_and_hold, orders).

The only module of the backtest package that imports Django (REST framework)."""

from __future__ import annotations

import dataclasses
import io
from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.models import Side
from positions.models import Sizing
from positions.strategy import rules
from positions.strategy.backtest import data, engine, report
from volbal.api import StrictSerializer
from volbal.errors import ApiError
from volbal.parsers import StrictJSONParser
from volbal.schema import write_errors

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


class BacktestParamsSerializer(StrictSerializer):
    """Everything but the series and the dividends (those are checked by hand: fast)."""

    sample = serializers.ChoiceField(
        choices=data.SAMPLE_TICKERS, required=False,
        help_text="A bundled daily series 2000-2013 (dividends derived from adjusted closes) "
                  "instead of `prices`.")
    start = serializers.CharField(required=False, help_text="First date or time (ISO).")
    end = serializers.CharField(required=False,
                                help_text="Last date or time (ISO; a date includes the day).")
    trigger_pct = serializers.DecimalField(required=False, **_RATIO)
    rebalance_ratio = serializers.DecimalField(required=False, **_RATIO)
    sizing = serializers.ChoiceField(choices=Sizing.choices, required=False)
    fixed_fraction = serializers.DecimalField(required=False, **_RATIO)
    guard_low = serializers.DecimalField(required=False, **_RATIO)
    guard_high = serializers.DecimalField(required=False, **_RATIO)
    min_notional = serializers.DecimalField(required=False, **_RATIO)
    commission_rate = serializers.DecimalField(required=False, **_RATIO)
    max_orders_per_day = serializers.IntegerField(required=False)
    fractional = serializers.BooleanField(required=False)
    qty_step = serializers.DecimalField(required=False, allow_null=True, **_RATIO)
    withholding_tax_rate = serializers.DecimalField(required=False, **_RATIO)
    cash = serializers.DecimalField(required=False, default=Decimal("10000"), **_RATIO)
    start_weight = serializers.DecimalField(required=False, default=Decimal("0.5"), **_RATIO)
    slippage_bps = serializers.DecimalField(required=False, default=Decimal("0"), **_RATIO)
    fill = serializers.ChoiceField(
        choices=engine.FILLS, required=False, default="same_bar",
        help_text="same_bar: a proposal fills at its own bar's price; next_bar: it is placed as "
                  "an open order and fills at the next bar's price (trimmed to what the cash or "
                  "shares then cover).")


class BacktestRequestSerializer(BacktestParamsSerializer):
    """The documented body."""

    prices = PricePointSerializer(many=True, required=False,
                                  help_text=f"The series, at most {MAX_BARS:,} bars.")
    dividends = DividendInSerializer(many=True, required=False,
                                     help_text="Replace a sample's derived dividends.")


_METRICS = inline_serializer(
    name="BacktestMetrics",
    fields={
        "total_return": serializers.FloatField(),
        "cagr": serializers.FloatField(allow_null=True),
        "volatility": serializers.FloatField(allow_null=True),
        "sharpe": serializers.FloatField(allow_null=True),
        "sortino": serializers.FloatField(allow_null=True),
        "max_drawdown": serializers.FloatField(),
        "max_drawdown_days": serializers.FloatField(),
        "buys": serializers.IntegerField(),
        "sells": serializers.IntegerField(),
        "commissions": serializers.FloatField(),
        "dividends": serializers.FloatField(),
        "turnover": serializers.FloatField(allow_null=True),
        "in_band_share": serializers.FloatField(),
        "final_qty": serializers.FloatField(),
        "final_cash": serializers.FloatField(),
        "final_value": serializers.FloatField(),
    },
)

_RESULT = inline_serializer(
    name="BacktestResult",
    fields={
        "metrics": _METRICS,
        "buy_and_hold": _METRICS,
        "orders": inline_serializer(
            name="BacktestOrder",
            fields={
                "date": serializers.CharField(),
                "side": serializers.ChoiceField(choices=Side.choices),
                "qty": serializers.FloatField(),
                "price": serializers.FloatField(),
                "commission": serializers.FloatField(),
                "kind": serializers.CharField(
                    help_text="opening, buy_trigger, sell_trigger or guardrail_rebalance"),
            },
            many=True,
        ),
    },
)


def _too_large() -> ApiError:
    return ApiError("series_too_large",
                    f"The body is larger than {MAX_BODY_BYTES:,} bytes; a series of at most "
                    f"{MAX_BARS:,} bars fits in far less.", status=413,
                    fields={"prices": f"At most {MAX_BARS:,} bars."})


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
    writes_nothing = True  # no Idempotency-Key handling: a replay is simply a rerun

    @extend_schema(
        operation_id="backtest_run",
        summary="Backtest the strategy against buy-and-hold",
        description=(
            "Runs the live evaluation rules over a price series: the posted `prices` (at most "
            f"{MAX_BARS:,} bars) or a bundled `sample`, with optional `dividends`. Every "
            "strategy field may be given (fractions, not percent); `cash` (default 10000), "
            "`start_weight` (0.5), `slippage_bps` (0) and `fill` (`same_bar`) set up the run. "
            "Nothing is stored. "
            "The answer holds the strategy's metrics, buy-and-hold's, and every order."
        ),
        request=BacktestRequestSerializer,
        responses={
            200: _RESULT,
            **write_errors((413, "series_too_large")),
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
        size = request.META.get("CONTENT_LENGTH") or 0
        try:
            size = int(size)
        except ValueError:
            size = 0
        if size > MAX_BODY_BYTES:
            raise _too_large()
        body = request.data
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
        try:
            rep = report.backtest(series, cfg, setup, dividends)
        except engine.SetupError as exc:
            raise ApiError("validation_error", f"Invalid input. {exc}", fields=exc.fields) \
                from None
        return Response(report.document(rep))
