"""manage.py import_prices FILE.csv [--ticker T], or --sample TICKER [--ticker T] [--start D]
[--end D]: all rows or none."""

from __future__ import annotations

import argparse

from django.core.management.base import CommandError
from tqdm import tqdm

from events.actor import ActorCommand
from positions import services
from positions.prices_csv import PriceFileError, read_prices
from positions.strategy.backtest.data import SAMPLE_TICKERS
from volbal.errors import DomainError


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of 1 or more")
    return value


class Command(ActorCommand):  # its events and prices name it (events.actor)
    help = ("Import prices from a CSV with columns ticker,price,ts, or a Yahoo-style file with "
            "Date and Close columns and --ticker. Every bad row is reported with its line number "
            "(the first 20, then how many more) and nothing of the file is imported. Dates are "
            "the 16:00 close in VOLBAL_TRADING_TZ; times without an offset are UTC; a time more "
            "than VOLBAL_PRICE_FUTURE_ALLOWANCE_SECONDS ahead is refused.")

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?")
        parser.add_argument("--ticker", help="The ticker of a Date/Close file, or to store a "
                                             "sample's prices under (default the sample's).")
        parser.add_argument("--sample", metavar="TICKER",
                            help="Instead of a file, the daily closes of a bundled sample (the "
                                 f"backtest's: {', '.join(SAMPLE_TICKERS)}; split-adjusted), "
                                 "e.g. --sample IBM --ticker PAPER for a ticker of its own.")
        parser.add_argument("--start", help="With --sample: the first date to import (ISO).")
        parser.add_argument("--end", help="With --sample: the last date to import (ISO).")
        parser.add_argument("--batch", type=_positive_int, default=5000,
                            help="Rows per insert (1 or more).")

    def handle(self, *args, file, ticker, batch, sample, start, end, **options):
        if (file is None) == (sample is None):
            raise CommandError("give a FILE or --sample TICKER (one of them)")
        if sample is None and (start or end):
            raise CommandError("--start and --end go with --sample")
        if sample is not None:
            rows, file = _sample_rows(sample, ticker, start, end), f"sample {sample.upper()}"
        else:
            rows = _file_rows(file, ticker)
        # on stderr, and only on a terminal (disable=None): cron and pipes get no bar
        bar = tqdm(total=len(rows), desc="import", unit="price", disable=None)
        try:
            stored = services.prices_record(rows=rows, batch_size=batch,
                                            progress=lambda done: bar.update(done - bar.n))
            count = len(stored)
        except DomainError as exc:
            raise CommandError(f"{file}: {exc.message}; nothing imported") from None
        finally:
            bar.close()
        tickers = sorted({r["ticker"].upper() for r in rows})
        self.stdout.write(f"Imported {count} prices for {', '.join(tickers)} from {file}.")


def _sample_rows(sample: str, ticker: str | None, start, end) -> list[dict]:
    """A bundled sample's closes (the series the backtest loads) read as a Date/Close file
    is, each date that day's close."""
    # a management command that keeps startup light: numpy only when a sample is read
    from positions.strategy.backtest import data

    try:
        series, _dividends = data.load_sample(sample)
        series = series.between(start, end)
    except data.DataError as exc:
        raise CommandError(f"--sample: {exc}") from None
    lines = ["Date,Close", *(f"{series.label(i)},{float(series.prices[i])!r}"
                             for i in range(len(series)))]
    try:
        return read_prices(iter(lines), ticker=ticker or series.name)
    except PriceFileError as exc:
        raise CommandError(f"sample {sample.upper()}: {exc}; nothing imported") from None


def _file_rows(file: str, ticker: str | None) -> list[dict]:
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            return read_prices(handle, ticker=ticker)
    except OSError as exc:
        raise CommandError(f"{file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"{file}: not UTF-8 text (byte {exc.start} cannot be read); "
                           "nothing imported") from None
    except PriceFileError as exc:
        raise CommandError(f"{file}: {exc}; nothing imported") from None
