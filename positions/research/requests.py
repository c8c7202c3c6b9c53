"""A research job's request, parsed and checked with no web framework: the one reading of a
sweep, walk-forward or backtest request, shared by the API view (which has already checked each
field's type with its serializer) and the worker (which reads the stored request again).

Every refusal is a :class:`RequestError`: a machine code, a sentence, the offending fields and an
HTTP status; the API answers it as it is, the worker stores it as the job's error. Numbers are
bounded on their digits and exponent before any arithmetic (docs/research.md#jobs): a
``1e999999`` costs nothing to refuse, and would cost minutes to count a range with or megabytes
to write out."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from positions.strategy import rules
from positions.strategy.backtest import data, engine
from positions.strategy.backtest import portfolio as pf
from positions.strategy.research import sweep as research
from positions.strategy.research import walkforward
from positions.strategy.rules import portfolio as prules

SWEEP, WALKFORWARD, BACKTEST = "sweep", "walkforward", "backtest"  # = models.JobKind's values

# The most backtests (one cell on one series or window) any job may run, whatever the
# configured quota (services): a walk-forward of one-bar windows over a large grid would
# otherwise queue billions.
MAX_JOB_RUNS = 1_000_000

# A number in a request: at most this many significant digits, digits after the point and
# digits before it (the widest of the strategy's Number fields), and characters of text.
MAX_DIGITS, MAX_PLACES, MAX_WHOLE_DIGITS = 30, 12, 18
MAX_NUMBER_TEXT = 64

# A walk-forward window: at most this many of each unit (a century; far beyond any series).
MAX_LENGTH = {"": 1_000_000, "d": 36_600, "m": 1_200, "y": 100}

MAX_BARS = 100_000
MAX_DIVIDENDS = 10_000
SETUP_DEFAULTS = {"cash": "10000", "start_weight": "0.5", "slippage_bps": "0",
                  "fill": "same_bar"}
_DIVIDEND_KEYS = {"ex_date", "pay_date", "dps"}


class RequestError(ValueError):
    """A request refused: ``code`` (machine), ``message`` (a sentence), ``fields`` (name ->
    sentence) and the HTTP ``status`` to answer it with."""

    def __init__(self, code: str, message: str, *, fields: dict | None = None,
                 status: int = 400):
        super().__init__(message)
        self.code, self.message, self.fields, self.status = code, message, fields or {}, status


class ParamError(RequestError):
    """One field refused: its name and one sentence (``str(exc)`` is the sentence)."""

    def __init__(self, field: str, why: str, *, code: str = "validation_error",
                 status: int = 400):
        super().__init__(code, f"Invalid input. {field}: {why}", fields={field: why},
                         status=status)
        self.field, self.why = field, why

    def __str__(self) -> str:
        return self.why


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def number_problem(raw) -> str | None:
    """Why ``raw`` (a JSON number, or its text) is not a number a request may hold, or None.
    Reads the text's length and the Decimal's digits and exponent only: no arithmetic."""
    if isinstance(raw, bool):
        return "is not a number"
    if isinstance(raw, int):
        # bit_length is O(1); 60 bits > 10**18 > MAX_WHOLE_DIGITS digits
        return f"has more than {MAX_WHOLE_DIGITS} digits" if raw.bit_length() > 59 else None
    if isinstance(raw, str):
        if len(raw) > MAX_NUMBER_TEXT:
            return f"is longer than {MAX_NUMBER_TEXT} characters"
        try:
            raw = Decimal(raw.strip())
        except (InvalidOperation, ValueError):
            return "is not a number"
    if not isinstance(raw, Decimal):
        return "is not a number"
    if not raw.is_finite():
        return "is not a finite number"
    sign, digits, exponent = raw.as_tuple()
    if len(digits) > MAX_DIGITS:
        return f"has more than {MAX_DIGITS} significant digits"
    if exponent < -MAX_PLACES:
        return f"has more than {MAX_PLACES} digits after the point"
    if exponent + len(digits) > MAX_WHOLE_DIGITS:
        return f"has more than {MAX_WHOLE_DIGITS} digits before the point"
    return None


def _text(v) -> str:
    return format(v, "f") if isinstance(v, Decimal) else str(v)


def _shown(value) -> str:
    text = str(value)
    return repr(text) if len(text) <= MAX_NUMBER_TEXT else f"a value of {len(text):,} characters"


# What research.parse_value says itself, and better (it knows the field's type).
_PARSE_VALUE_SAYS = ("is not a number", "is not a finite number")


def _grid_texts(name: str, values) -> str:
    """One grid field's values as the command's text (``start:stop:step`` or ``v1,v2``), each
    number bounded before it is formatted or counted (ParamError on the grid)."""
    if isinstance(values, str):
        tokens = values.split(":") if ":" in values else values.split(",")
    else:
        tokens = list(values)
    if len(tokens) > research.MAX_AXIS_VALUES:
        raise ParamError("grid", f"{name}: more than {research.MAX_AXIS_VALUES:,} values")
    for token in tokens:
        problem = number_problem(token)
        if problem and problem not in _PARSE_VALUE_SAYS:
            raise ParamError("grid", f"{name}: {_shown(token)} {problem}")
    return values if isinstance(values, str) else ",".join(_text(v) for v in values)


# --------------------------------------------------------------------------------------------
# Sweeps and walk-forwards
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    spec: research.Spec
    items: list
    train: object = None  # walkforward.Length
    test: object = None
    windows: tuple = ()

    @property
    def total(self) -> int:
        per = research.total_runs(self.spec, self.items)
        return per * len(self.windows) if self.windows else per

    @property
    def runs(self) -> int:
        """The single-series backtests the job costs, for its caps: :attr:`total` (what its
        progress counts: cells) times the holdings of a portfolio, whose every cell runs each
        holding."""
        return self.total * max((len(getattr(item, "holdings", (item,))) for item in self.items),
                                default=1)


def normalise(data_: dict) -> dict:
    """A sweep or walk-forward request whose fields have their types (the API's serializer) as
    stored JSON: decimals as exact strings, the grid as the command's ``field=values`` texts."""
    strategy = {f.name: _text(data_[f.name]) if data_[f.name] is not None else None
                for f in dataclasses.fields(rules.Config) if f.name in data_}
    # A list of [field, values] pairs: a JSON object's key order is not kept (jsonb), and the
    # order of the axes is the grid's (cell numbers, the heatmap's default x and y).
    grid = [[name, _grid_texts(name, values)] for name, values in data_["grid"].items()]
    return {
        "kind": data_["kind"],
        "series": list(data_.get("series") or []),
        "ticker": str(data_.get("ticker") or "").strip().upper() or None,
        **({"portfolio": clean_exact(data_["portfolio"])}
           if data_.get("portfolio") is not None else {}),
        "grid": grid,
        "metric": data_.get("metric", "sharpe"),
        "top": data_.get("top", 10),
        "exact": data_.get("exact", False),
        "start": data_.get("start"),
        "end": data_.get("end"),
        "cash": _text(data_["cash"]),
        "start_weight": _text(data_["start_weight"]),
        "slippage_bps": _text(data_["slippage_bps"]),
        "fill": data_.get("fill", "same_bar"),
        "train": data_.get("train"),
        "test": data_.get("test"),
        "strategy": strategy,
    }


def build(params: dict, history: tuple | None = None) -> Job:
    """The job's Spec, series and windows from its stored parameters, with the checks the
    commands make (raises ParamError naming the field). A job by ``ticker`` runs on
    ``history``, ``(series, dividends, splits)`` fetched by the caller (the view or the
    worker: docs/marketdata.md#history-for-research), its splits in the spec's setup."""
    spec = spec_of(params)
    wf = params["kind"] == WALKFORWARD
    items = []
    if params.get("portfolio") is not None:
        items.append(_portfolio_item(params, history))
    elif params.get("ticker"):
        if params.get("series"):
            raise ParamError("ticker", "give either series or ticker")
        series, dividends, splits = _history(history)
        try:
            series = series.between(params.get("start"), params.get("end"))
        except data.DataError as exc:
            raise ParamError("start", str(exc)) from None
        spec = dataclasses.replace(spec, setup=dataclasses.replace(spec.setup, splits=splits))
        items.append(research.Item(params["ticker"], series, tuple(dividends)))
    elif not params.get("series"):
        raise ParamError("series", "give series (bundled samples), ticker (from the feed) or "
                                   "portfolio")
    for ticker in params["series"]:
        try:
            series, dividends = data.load_sample(ticker)
            series = series.between(params.get("start"), params.get("end"))
        except data.DataError as exc:
            msg = str(exc)
            field = next((n for n in ("start", "end") if msg.startswith(n)), "series")
            raise ParamError(field, f"{ticker}: {msg}") from None
        items.append(research.Item(ticker, series, tuple(dividends)))
    if not wf:
        return _bounded(Job(spec, items))
    if len(items) != 1:
        raise ParamError("series", "a walk-forward runs on one series")
    train, test = _length(params, "train"), _length(params, "test")
    try:
        wins = walkforward.windows(items[0].series, train, test)
    except research.GridError as exc:
        field = "test" if str(exc).startswith("test") else "train"
        raise ParamError(field, str(exc)) from None
    return _bounded(Job(spec, items, train, test, tuple(wins)))


def _portfolio_item(params: dict, histories: dict | None) -> research.PortfolioItem:
    """A sweep's or walk-forward's ``portfolio`` (as a backtest's, :func:`portfolio`; its
    holdings bundled samples or tickers, whose histories the caller fetched: ``histories`` by
    ticker) as the job's one item, swept as a series is."""
    if params.get("series") or params.get("ticker"):
        raise ParamError("portfolio", "give one of series, ticker or portfolio")
    spec = portfolio(params["portfolio"], params)
    for i, h in enumerate(spec.holdings):
        if h.source == "series":
            raise _portfolio_error("validation_error", f"portfolio.holdings[{i}]: a job's "
                                   "holdings are bundled samples or tickers (its request is "
                                   "stored and shown).", f"portfolio.holdings[{i}]")
    if spec.tickers and not isinstance(histories, dict):
        _history(None)
    holdings = portfolio_holdings(spec, params.get("start"), params.get("end"), histories)
    try:
        return research.PortfolioItem.of("portfolio", holdings, spec.rebalance, spec.band)
    except pf.PortfolioError as exc:  # the backtest's code (no_common_bars, ...)
        raise _portfolio_error(exc.code, exc.message, exc.field) from None


def _length(params: dict, field: str) -> walkforward.Length:
    """A walk-forward window's length, at most a century of its unit (a longer one overflows
    the calendar before it could be found not to fit)."""
    try:
        length = walkforward.parse_length(params.get(field) or "", field)
    except research.GridError as exc:
        raise ParamError(field, str(exc)) from None
    limit = MAX_LENGTH[length.unit]
    if length.count > limit:
        unit = {"": "bars", "d": "days", "m": "months", "y": "years"}[length.unit]
        raise ParamError(field, f"{field} {params.get(field)!r} is longer than any series: at "
                                f"most {limit:,} {unit}")
    return length


TICKER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def series_names(params: dict) -> list[str]:
    """The names of a job's series: its samples, or its ticker."""
    if params.get("portfolio") is not None:
        return ["portfolio"]
    return list(params.get("series") or ([params["ticker"]] if params.get("ticker") else []))


def history_range(params: dict):
    """``(ticker, start, end)`` of a request by ``ticker`` (``end`` None: today), or None
    without one; a ticker that is not one, or a start or end that is not an ISO date, is a
    ParamError. What the caller fetches for :func:`build` and :func:`backtest`."""
    raw = params.get("ticker")
    if raw is None:
        return None
    ticker = str(raw).strip().upper()
    if not (1 <= len(ticker) <= 16 and ticker[0].isalpha() and set(ticker) <= TICKER_CHARS):
        raise ParamError("ticker", "ticker must be 1 to 16 characters: a letter, then letters, "
                                   "digits, '.' or '-'.")
    days = []
    for name in ("start", "end"):
        text = params.get(name)
        if text is None:
            if name == "start":
                raise ParamError("start", "a series by ticker needs start (an ISO date)")
            days.append(None)
            continue
        try:
            days.append(dt.date.fromisoformat(str(text)[:10]))
        except ValueError:
            raise ParamError(name, f"{name} {text!r} is not an ISO date") from None
    if days[1] is not None and days[1] < days[0]:
        raise ParamError("end", "end is before start")
    return ticker, days[0], days[1]


def _history(history):
    if history is None:  # the caller fetches it: this module reads no feed
        raise RequestError("history_missing", "The history of the ticker was not fetched.",
                           status=500)
    return history


def spec_of(params: dict) -> research.Spec:
    """The job's Spec from its stored parameters (no series loaded; raises ParamError)."""
    cfg = _config(params["strategy"])
    setup = engine.Setup(cash=Decimal(params["cash"]), start_weight=Decimal(params["start_weight"]),
                         slippage_bps=Decimal(params["slippage_bps"]),
                         fill=params.get("fill", "same_bar"))  # jobs stored before it: same_bar
    for name, why in engine.setup_errors(setup).items():
        raise ParamError(name, why)
    for name, values_ in params["grid"]:
        _grid_texts(name, values_)
    try:
        axes = tuple(research.parse_axis(f"{name}={values_}")
                     for name, values_ in params["grid"])
    except research.GridError as exc:
        raise ParamError("grid", str(exc)) from None
    wf = params["kind"] == WALKFORWARD
    if wf:
        try:
            walkforward.check_axes(axes)
        except research.GridError as exc:
            raise ParamError("grid", str(exc)) from None
    try:
        # a portfolio's cells run exact (its holdings meet at exact cash moves): no re-runs
        exact = params["exact"] or params.get("portfolio") is not None
        spec = research.Spec(cfg, axes, setup, metric=params["metric"], exact=exact,
                             top=min(params["top"], 3) if wf else params["top"])
    except research.GridError as exc:
        raise ParamError("metric" if "metric" in str(exc) else "grid", str(exc)) from None
    return spec


def _config(strategy: dict) -> rules.Config:
    """The strategy fields' texts (``None``: not given) as a checked rules.Config; every
    problem of the ranges named at once."""
    values = {}
    for name, raw in strategy.items():
        if raw is None:
            continue
        try:
            values[name] = research.parse_value(name, raw)
        except research.GridError as exc:
            raise ParamError(name, str(exc)) from None
    cfg = rules.Config(**values)
    problems = rules.config_errors(cfg)
    if problems:
        name, why = next(iter(problems.items()))
        if len(problems) == 1:
            raise ParamError(name, why)
        raise RequestError("validation_error", f"Invalid input. {name}: {why}", fields=problems)
    return cfg


def _bounded(job: Job) -> Job:
    if job.runs > MAX_JOB_RUNS:
        raise ParamError("grid", f"the job would run {job.runs:,} backtests (cells x series "
                                 f"or holdings, x windows); at most {MAX_JOB_RUNS:,}")
    return job


# --------------------------------------------------------------------------------------------
# Backtests (POST /v1/backtests, and a backtest job in the worker)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backtest:
    """A checked backtest request: what ``report.backtest`` takes, and the request without its
    series and dividends (``summary``, what a job shows of it)."""

    series: data.Series
    cfg: rules.Config
    setup: engine.Setup
    dividends: list
    summary: dict


def backtest_options(validated: dict) -> dict:
    """A backtest request's fields other than its series and dividends, typed (the API's
    serializer), as stored JSON texts: what :func:`backtest` reads, now and in the worker."""
    options = {"strategy": {f.name: (None if validated[f.name] is None
                                     else _text(validated[f.name]))
                            for f in dataclasses.fields(rules.Config) if f.name in validated}}
    for name, default in SETUP_DEFAULTS.items():
        options[name] = _text(validated.get(name, default))
    for name in ("sample", "ticker", "start", "end"):
        options[name] = validated.get(name)
    return options


def backtest_source(options: dict, body: dict) -> str:
    """Which series a backtest request gives: ``prices``, ``sample`` or ``ticker`` (exactly
    one, else a RequestError); checked before anything is fetched for it."""
    given = [name for name, there in (("prices", "prices" in body),
                                      ("sample", options.get("sample") is not None),
                                      ("ticker", options.get("ticker") is not None)) if there]
    if len(given) != 1:
        msg = "Give one of prices, sample or ticker."
        raise RequestError("validation_error", f"Invalid input. {msg}",
                           fields={"prices": msg, "sample": msg, "ticker": msg})
    return given[0]


def _strategy_and_setup(options: dict) -> tuple[rules.Config, engine.Setup]:
    """A backtest's strategy and set-up from its options, checked (RequestError)."""
    cfg = _config(options["strategy"])
    setup = engine.Setup(cash=Decimal(options["cash"]),
                         start_weight=Decimal(options["start_weight"]),
                         slippage_bps=Decimal(options["slippage_bps"]),
                         fill=options.get("fill", "same_bar"))  # jobs stored before it
    problems = engine.setup_errors(setup)
    if problems:
        name, why = next(iter(problems.items()))
        raise RequestError("validation_error", f"Invalid input. {name}: {why}", fields=problems)
    return cfg, setup


def backtest(options: dict, body: dict, history: tuple | None = None) -> Backtest:
    """The backtest of ``options`` (:func:`backtest_options`) over the request ``body``'s
    ``prices``, ``sample`` or ``ticker`` (``history``: its ``(series, dividends, splits)``,
    fetched by the caller), with its ``dividends``: the series loaded, everything checked
    (RequestError naming the field)."""
    has_prices = backtest_source(options, body) == "prices"
    by_ticker = options.get("ticker") is not None
    cfg, setup = _strategy_and_setup(options)
    try:
        if has_prices:
            series = data.series_from_points(_points(body["prices"]))
            dividends = []
        elif by_ticker:
            series, dividends, splits = _history(history)
            setup = dataclasses.replace(setup, splits=splits)
        else:
            series, dividends = data.load_sample(options["sample"])
    except data.DataError as exc:
        raise ParamError("prices" if has_prices else "sample", str(exc)) from None
    if "dividends" in body:
        dividends = _dividends(body["dividends"])
    try:
        series = series.between(options.get("start"), options.get("end"))
    except data.DataError as exc:
        msg = str(exc)
        names = [n for n in ("start", "end") if msg.startswith(n)] or ["start", "end"]
        raise RequestError("validation_error", f"Invalid input. {msg}",
                           fields={n: msg for n in names}) from None
    summary = {k: v for k, v in body.items() if k not in ("prices", "dividends")}
    summary["bars"] = len(series)
    summary["dividends"] = len(dividends)
    return Backtest(series, cfg, setup, list(dividends), summary)


def _points(raw) -> list[tuple[str, object]]:
    if not isinstance(raw, list):
        raise ParamError("prices", "Expected a list of {ts, price} objects.")
    if len(raw) > MAX_BARS:
        raise RequestError("series_too_large",
                           f"The series has {len(raw):,} bars; at most {MAX_BARS:,} are "
                           "accepted.", status=413,
                           fields={"prices": f"At most {MAX_BARS:,} bars."})
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"ts", "price"}:
            raise ParamError("prices", f"prices[{i}] must be an object with exactly ts and price.")
        price = item["price"]
        if isinstance(price, bool) or not isinstance(price, (int, float, Decimal)):
            raise ParamError("prices", f"prices[{i}].price must be a number.")
        out.append((item["ts"], price))
    return out


def _dividends(raw) -> list[data.Dividend]:
    """The posted dividends, each entry checked on its own (its index and field named)."""
    if not isinstance(raw, list) or len(raw) > MAX_DIVIDENDS:
        raise ParamError("dividends", "Expected a list of {ex_date, pay_date, dps} objects "
                                      f"(at most {MAX_DIVIDENDS:,}).")
    out = []
    for i, entry in enumerate(raw):
        where = f"dividends[{i}]"
        if not isinstance(entry, dict):
            raise ParamError("dividends", f"{where} must be an object with ex_date, dps and "
                                          "optionally pay_date.")
        unknown = sorted(set(entry) - _DIVIDEND_KEYS)
        if unknown:
            raise ParamError("dividends", f"{where}: unknown field {_shown(unknown[0])} (ex_date, "
                                          "pay_date, dps)")
        for key in ("ex_date", "dps"):
            if key not in entry:
                raise ParamError("dividends", f"{where}.{key}: This field is required.")
        for key in ("ex_date", "pay_date"):
            given = entry.get(key)
            if (given is not None and not isinstance(given, str)
                    or key == "ex_date" and given is None):
                raise ParamError("dividends",
                                 f"{where}.{key}: expected an ISO date (YYYY-MM-DD).")
        problem = number_problem(entry["dps"])
        if problem:
            raise ParamError("dividends", f"{where}.dps: {_shown(entry['dps'])} {problem}")
        try:
            out.append(data.make_dividend(entry["ex_date"], entry.get("pay_date"), entry["dps"],
                                          where))
        except data.DataError as exc:
            raise ParamError("dividends", str(exc)) from None
    return sorted(out, key=lambda d: (d.ex_date, d.pay_date))


def clean_exact(x):
    """JSON for a job's params: decimals as their exact text (as :func:`normalise` stores
    them)."""
    if isinstance(x, Decimal):
        return _text(x)
    if isinstance(x, dict):
        return {str(k): clean_exact(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_exact(v) for v in x]
    return x


# --------------------------------------------------------------------------------------------
# Portfolio backtests (POST /v1/backtests with "portfolio"; docs/backtests.md#portfolio-backtests)
# --------------------------------------------------------------------------------------------


MAX_HOLDINGS = 20
_HOLDING_SOURCES = ("sample", "ticker", "series")
_HOLDING_KEYS = {*_HOLDING_SOURCES, "weight", "name", "dividends"}
_PORTFOLIO_KEYS = {"holdings", "rebalance", "rebalance_band"}


@dataclass(frozen=True)
class PortfolioHolding:
    """One holding of a portfolio request, checked, its data not loaded yet."""

    name: str
    source: str  # "sample" | "ticker" | "series"
    weight: Decimal
    points: list | None = None  # a posted series' (ts, price) pairs
    dividends: list | None = None  # posted dividends (replacing a sample's or ticker's)


@dataclass(frozen=True)
class Portfolio:
    """A checked portfolio request: its holdings and rebalance rule (no data loaded)."""

    holdings: tuple[PortfolioHolding, ...]
    rebalance: str
    band: Decimal | None

    @property
    def tickers(self) -> list[str]:
        """The holdings whose history the caller fetches (:func:`portfolio_backtest`)."""
        return [h.name for h in self.holdings if h.source == "ticker"]


def _portfolio_error(code: str, why: str, field: str = "portfolio") -> RequestError:
    return RequestError(code, why, fields={field: why})


def _of_series(text: str, field: str) -> str:
    """A sentence about posted ``prices[i]`` said of a holding's series ``field``."""
    return text.replace("prices[", f"{field}[")


def _holding_series_error(exc: RequestError, field: str) -> RequestError:
    """A posted series' refusal (:func:`_points`, said of ``prices``) said of a holding's
    ``series``: its code, status and sentence, under ``field``."""
    why = _of_series(exc.why if isinstance(exc, ParamError)
                     else exc.fields.get("prices", exc.message), field)
    return RequestError(exc.code, f"Invalid input. {field}: {why}" if isinstance(
        exc, ParamError) else exc.message, fields={field: why}, status=exc.status)


def portfolio(raw, options: dict) -> Portfolio:
    """The request's ``portfolio`` object checked: 1 to :data:`MAX_HOLDINGS` holdings, each
    exactly one of a bundled ``sample``, a ``ticker`` (its history from the feed: needs the
    request's ``start``) or a posted ``series`` (as ``prices``), with its ``weight`` (the
    target_weight bounds, the sum at most 1: ``invalid_weights``); no holding twice
    (``duplicate_holding``), no unknown sample (``unknown_sample``); the rebalance rule and band
    as rules.portfolio checks them (``invalid_rebalance``)."""
    if not isinstance(raw, dict) or set(raw) - _PORTFOLIO_KEYS:
        extra = sorted(set(raw) - _PORTFOLIO_KEYS) if isinstance(raw, dict) else []
        raise _portfolio_error("validation_error", "portfolio must be an object with holdings, "
                               "rebalance and rebalance_band" + (
                                   f" (unknown: {_shown(extra[0])})" if extra else "") + ".")
    items = raw.get("holdings")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_HOLDINGS:
        raise _portfolio_error("validation_error", "portfolio.holdings must be a list of 1 to "
                               f"{MAX_HOLDINGS} holdings.", "portfolio.holdings")
    out, seen = [], set()
    for i, item in enumerate(items):
        where = f"portfolio.holdings[{i}]"
        if not isinstance(item, dict) or set(item) - _HOLDING_KEYS:
            raise _portfolio_error("validation_error", f"{where} must be an object with one of "
                                   "sample, ticker or series, a weight, and optionally name and "
                                   "dividends.", where)
        given = [k for k in _HOLDING_SOURCES if item.get(k) is not None]
        if len(given) != 1:
            raise _portfolio_error("validation_error", f"{where}: give one of sample, ticker or "
                                   "series.", where)
        source = given[0]
        weight = item.get("weight")
        problem = "is required" if weight is None else number_problem(weight)
        if problem:
            raise _portfolio_error("invalid_weights", f"{where}.weight {problem}.",
                                   f"{where}.weight")
        weight = Decimal(repr(weight)) if isinstance(weight, float) else Decimal(str(weight))
        why = prules.weight_error(weight, f"{where}.weight")
        if why:
            raise _portfolio_error("invalid_weights", why, f"{where}.weight")
        points = None
        if source == "series":
            try:
                points = _points(item["series"])
            except RequestError as exc:  # said of prices: said of the holding's series
                raise _holding_series_error(exc, f"{where}.series") from None
            name = str(item.get("name") or f"series {i + 1}")[:32]
        else:
            value = item[source]
            name = str(value).strip().upper() if isinstance(value, str) else ""
            if source == "sample" and name not in data.SAMPLE_TICKERS:
                raise _portfolio_error("unknown_sample", f"{where}: {_shown(value)} is not a "
                                       "bundled sample (" + ", ".join(data.SAMPLE_TICKERS) +
                                       ").", where)
            if source == "ticker":
                history_range({"ticker": name, "start": options.get("start"),
                               "end": options.get("end")})  # ParamError: ticker, start, end
        if name in seen:
            raise _portfolio_error("duplicate_holding", f"{where}: {name} is already a holding "
                                   "of this portfolio.", where)
        seen.add(name)
        dividends = _dividends(item["dividends"]) if "dividends" in item else None
        out.append(PortfolioHolding(name, source, weight, points, dividends))
    why = prules.weights_error([h.weight for h in out])
    if why:
        raise _portfolio_error("invalid_weights", why)
    cash = _cash(options)
    for i, h in enumerate(out):
        why = pf.funding_error(h.weight, cash) if cash is not None else None
        if why:
            where = f"portfolio.holdings[{i}].weight"
            raise _portfolio_error("invalid_weights", f"{where} ({h.name}): {why}", where)
    rule = raw.get("rebalance", "never")
    band = raw.get("rebalance_band")
    if band is not None:
        problem = number_problem(band)
        if problem:
            raise _portfolio_error("invalid_rebalance", f"rebalance_band {problem}.",
                                   "portfolio.rebalance_band")
        band = Decimal(repr(band)) if isinstance(band, float) else Decimal(str(band))
    problems = prules.rule_errors(rule, band)
    if problems:
        raise RequestError("invalid_rebalance", " ".join(problems.values()),
                           fields={f"portfolio.{k}": v for k, v in problems.items()})
    return Portfolio(tuple(out), rule, band)


def _cash(options: dict) -> Decimal | None:
    """The request's cash (its default when not given) if it is a positive number, else None
    (refused on its own by the set-up's checks)."""
    raw = options.get("cash", SETUP_DEFAULTS["cash"])
    if raw is None or number_problem(raw):
        return None
    cash = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(str(raw).strip())
    return cash if cash > 0 else None


def portfolio_text(text: str, rebalance: str = "never", band=None, start=None,
                   end=None, cash=None) -> Portfolio:
    """A command's ``--portfolio NAME=W,...`` as :func:`portfolio` reads a request's object:
    a bundled sample's name is that sample, any other name a ticker (its history fetched by
    the caller: it needs ``start``). ``--rebalance`` and ``--rebalance-band`` as ``rebalance``
    and ``rebalance_band``, ``--cash`` as ``cash``. Refusals as :func:`portfolio`'s
    (RequestError)."""
    holdings = []
    for part in str(text).split(","):
        name, _, weight = part.partition("=")
        name = name.strip().upper()
        if not name or not weight.strip():
            raise _portfolio_error("validation_error",
                                   f"{_shown(part)} is not NAME=WEIGHT (e.g. IBM=0.4).")
        holdings.append({"sample" if name in data.SAMPLE_TICKERS else "ticker": name,
                         "weight": weight.strip()})
    raw = {"holdings": holdings, "rebalance": rebalance}
    if band is not None:
        raw["rebalance_band"] = str(band).strip()
    return portfolio(raw, {"start": start, "end": end,
                           **({"cash": cash} if cash is not None else {})})


def portfolio_holdings(spec: Portfolio, start=None, end=None,
                       histories: dict[str, tuple] | None = None) -> list:
    """``spec``'s holdings as the portfolio backtest takes them (``backtest.portfolio.Holding``):
    each series loaded (``histories``: a ticker's ``(series, dividends, splits)``, fetched by
    the caller), cut to ``start``/``end`` (RequestError naming the holding)."""
    holdings = []
    for i, h in enumerate(spec.holdings):
        where = f"portfolio.holdings[{i}]"
        splits: tuple = ()
        try:
            if h.source == "series":
                series, dividends = data.series_from_points(h.points), []
            elif h.source == "ticker":
                series, dividends, splits = _history((histories or {}).get(h.name))
            else:
                series, dividends = data.load_sample(h.name)
            series = series.between(start, end)
        except data.DataError as exc:
            if h.source == "series":  # the series' own words, of its items
                field = f"{where}.series"
                why = _of_series(str(exc), field)
                why = why if why.startswith(field) else f"{field}: {why}"
            else:
                field, why = where, f"{where} ({h.name}): {exc}"
            raise _portfolio_error("validation_error", why, field) from None
        if h.dividends is not None:
            dividends = h.dividends
        holdings.append(pf.Holding(h.name, series, h.weight, tuple(dividends), tuple(splits)))
    return holdings


@dataclass(frozen=True)
class PortfolioBacktest:
    """What ``backtest.portfolio.simulate`` takes, loaded and checked."""

    holdings: list
    cfg: rules.Config
    setup: engine.Setup
    rebalance: str
    band: Decimal | None


def portfolio_backtest(options: dict, spec: Portfolio,
                       histories: dict[str, tuple] | None = None) -> PortfolioBacktest:
    """The portfolio backtest of ``options`` (:func:`backtest_options`) and ``spec``: each
    holding's series loaded (``histories``: a ticker's ``(series, dividends, splits)``,
    fetched by the caller) and cut to ``start``/``end``."""
    cfg, setup = _strategy_and_setup(options)
    holdings = portfolio_holdings(spec, options.get("start"), options.get("end"), histories)
    return PortfolioBacktest(holdings, cfg, setup, spec.rebalance, spec.band)
