"""manage.py alpaca_data_replay [--port 8765] [--recording PATH] [--dates]: a replay of Alpaca's
market-data API on 127.0.0.1 for the walk-through of docs/marketdata.md (no network needed)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from positions.marketdata import replay
from volbal import clock, market


class Command(BaseCommand):
    help = ("Serve a replay of Alpaca's market-data API on 127.0.0.1 (default: the recording of "
            "docs/marketdata.md's walk-through), dated relative to now: its day is the last "
            "session opened by now (today during or after today's session; before its open, "
            "on a weekend or a holiday, the last session). Each request is checked as the "
            "tests check it (method, path, every query parameter, the APCA-API-KEY-ID and "
            "APCA-API-SECRET-KEY headers, in the recording's order) and answered as recorded; "
            "a request that differs fails, and so does every later one (restart the replay). "
            "Point the service at it with ALPACA_DATA_URL=http://127.0.0.1:PORT. The keys "
            "checked are ALPACA_API_KEY_ID and ALPACA_API_SECRET_KEY of this environment "
            f"(default {replay.KEY_ID} and {replay.SECRET}). Ctrl-C stops it.")

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
        parser.add_argument("--recording", type=Path, default=replay.WALKTHROUGH,
                            help="a recording (positions/marketdata/replay.py's format; "
                                 "default the walk-through's)")
        parser.add_argument("--dates", action="store_true",
                            help="print the replay's day and the walk-through backtest's first "
                                 "session (three sessions before the last closed one) as shell "
                                 "exports, and exit")
        parser.add_argument("--exit-when-done", action="store_true",
                            help="stop once every recorded exchange has been answered, or at "
                                 "the first request not as recorded (exit 1)")

    def handle(self, *args, port, recording, dates, exit_when_done, **options):
        when = replay.ReplayDates.at(clock.now())
        if dates:
            self.stdout.write(f"export REPLAY_DAY={when.day} "
                              f"REPLAY_START={market.session_offset(when.closed, -3)}")
            return
        if not 1 <= port <= 65535:
            raise CommandError(f"--port {port}: a port is from 1 to 65535")
        if not recording.is_file():
            raise CommandError(f"--recording {recording}: no such file")
        # pytest-httpserver (pinned in requirements.txt): the tests' replay server
        from pytest_httpserver import HTTPServer

        server = HTTPServer(host="127.0.0.1", port=port)
        self.secret = os.environ.get("ALPACA_API_SECRET_KEY") or replay.SECRET
        try:
            replay.expect(server, recording, dates=when,
                          key_id=os.environ.get("ALPACA_API_KEY_ID") or replay.KEY_ID,
                          secret=self.secret)
        except (replay.RecordingError, ValueError) as exc:  # a placeholder it cannot render
            raise CommandError(str(exc)) from None
        total = len(server.ordered_handlers)
        try:
            server.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
        today = (f"today, {when.today}" if when.today == when.day else
                 f"the last session: today, {when.today}, has none yet")
        self.stdout.write(
            f"Replaying {recording.name} ({total} exchanges) on http://127.0.0.1:{port}, "
            f"dated {when.day} ({today}).\n"
            f"  export ALPACA_DATA_URL=http://127.0.0.1:{port}\nCtrl-C stops it.")
        self.stdout.flush()
        self.serve(server, total, exit_when_done)

    def masked(self, text: str) -> str:
        """``text`` without the secret key it checks (a request's headers, the matcher's)."""
        return text.replace(self.secret, "********") if self.secret else text

    def serve(self, server, total: int, exit_when_done: bool) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request: below
        if threading.current_thread() is threading.main_thread():  # (a test runs it in one)
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it too
        seen = failures = 0
        done = False
        try:
            while True:
                time.sleep(0.1)
                for request, response in server.log[seen:]:
                    seen += 1
                    self.stdout.write(f"{request.method} {request.full_path.rstrip('?')} -> "
                                      f"{response.status_code}")
                if len(server.assertions) > failures and not failures:
                    expected = (server.ordered_handlers[0].matcher if server.ordered_handlers
                                else "nothing more")
                    self.stderr.write(self.masked(
                        f"NOT AS RECORDED: {str(server.assertions[0]).split('.Ordered')[0]}\n"
                        f"  expected (exchange {total - len(server.ordered_handlers) + 1} of "
                        f"{total}): {expected}\nEvery later request fails: restart the replay "
                        "(and the walk-through, on a fresh database)."))
                failures = len(server.assertions)
                if failures and exit_when_done:
                    raise CommandError("a request was not as recorded")
                if not server.ordered_handlers and seen >= total and not failures and not done:
                    done = True
                    self.stdout.write(f"All {total} recorded exchanges answered.")
                    if exit_when_done:
                        return
                self.stdout.flush()
                self.stderr.flush()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            left = len(server.ordered_handlers)
            self.stdout.write(f"Stopped: {total - left} of {total} recorded exchanges answered.")
