"""manage.py import_prices FILE.csv [--ticker T]: all rows or none."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError

from positions import services
from positions.prices_csv import PriceFileError, read_prices
from volbal.errors import DomainError
from volbal.progress import Progress


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of 1 or more")
    return value


class Command(BaseCommand):
    help = ("Import prices from a CSV with columns ticker,price,ts, or a Yahoo-style file with "
            "Date and Close columns and --ticker. Every bad row is reported with its line number "
            "(the first 20, then how many more) and nothing of the file is imported. Dates are "
            "the 16:00 close in VOLBAL_TRADING_TZ; times without an offset are UTC.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--ticker", help="The ticker of a Date/Close file.")
        parser.add_argument("--batch", type=_positive_int, default=5000,
                            help="Rows per insert (1 or more).")

    def handle(self, *args, file, ticker, batch, **options):
        try:
            with open(file, newline="", encoding="utf-8-sig") as handle:
                rows = read_prices(handle, ticker=ticker)
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file}: not UTF-8 text (byte {exc.start} cannot be read); "
                               "nothing imported") from None
        except PriceFileError as exc:
            raise CommandError(f"{file}: {exc}; nothing imported") from None
        progress = Progress(len(rows), "import")
        try:
            stored = services.prices_record(rows=rows, batch_size=batch, progress=progress.update)
            count = len(stored)
        except DomainError as exc:
            raise CommandError(f"{file}: {exc.message}; nothing imported") from None
        finally:
            progress.close()
        tickers = sorted({r["ticker"].upper() for r in rows})
        self.stdout.write(f"Imported {count} prices for {', '.join(tickers)} from {file}.")
