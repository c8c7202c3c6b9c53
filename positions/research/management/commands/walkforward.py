"""``manage.py walkforward``: rolling train/test windows; the best cell of a sweep over each
train part runs over the next test part, carrying the position over.

Example::

    manage.py walkforward --sample IBM --train 3y --test 1y \\
        --grid trigger_pct=0.02:0.08:0.02 --grid guard_low=0.2,0.3 --plot ibm-wf.png

A thin command over :mod:`positions.strategy.research.walkforward`; the sweep options (grid,
metric, jobs, strategy fields off the grid, the run's cash and weight) are ``manage.py
sweep``'s.
"""

from __future__ import annotations

import gc
import os

from django.core.management.base import CommandError

from positions.research.management.commands import sweep as sweep_cmd
from positions.research.management.commands.backtest import emit
from positions.strategy import rules


class Command(sweep_cmd.Command):
    help = ("Walk-forward validation: for each rolling window the best cell of a sweep over "
            "the train part runs over the test part, from the state the previous window left; "
            "the stitched out-of-sample equity against the benchmarks.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        wf = parser.add_argument_group("walk-forward")
        wf.add_argument("--train", required=True,
                        help="train window: bars (750) or a calendar span (90d, 6m, 3y)")
        wf.add_argument("--test", required=True,
                        help="test window, the step between windows: bars or a span")
        wf.add_argument("--plot", metavar="FILE.png",
                        help="stitched equity against the benchmarks, the parameters per "
                             "window, the metric in and out of sample")
        wf.add_argument("--float-oos", action="store_true",
                        help="run the out-of-sample span on floats (default exact)")

    def handle(self, *args, **opts):
        gc.freeze()
        # a management command that keeps startup light: numpy, matplotlib, openpyxl when run
        from positions.strategy.backtest import engine
        from positions.strategy.export import charts, tables
        from positions.strategy.research import output, sweep, walkforward

        if opts["heatmap"]:
            raise CommandError("--heatmap: a walk-forward draws --plot; use manage.py sweep "
                               "for a heatmap")
        spec = sweep_cmd.spec_from(opts, min(opts["top"], 3))
        try:
            walkforward.check_axes(spec.axes)
        except sweep.GridError as exc:
            raise CommandError(f"--grid: {exc}") from None
        try:
            train = walkforward.parse_length(opts["train"], "--train")
            test = walkforward.parse_length(opts["test"], "--test")
        except sweep.GridError as exc:
            raise CommandError(str(exc)) from None
        spec, items = sweep_cmd.spec_and_items(self, opts, spec)
        if len(items) != 1:
            raise CommandError("a walk-forward runs on one series: give one --sample, --csv or "
                               "--ticker")
        (item,) = items
        try:
            wins = walkforward.windows(item.series, train, test)
        except sweep.GridError as exc:
            raise CommandError(str(exc)) from None
        per_window = sweep.total_runs(spec, items)
        bar = None if opts["no_progress"] else sweep_cmd._bar(per_window * len(wins),
                                                              self.stderr)

        done = 0

        def progress(runs: int) -> None:  # cells and exact re-runs of every window's sweep
            nonlocal done
            if bar is not None:
                done += runs
                bar.set_postfix_str(sweep.progress_text(sweep.progress_counts(
                    spec, 1, done, len(wins))), refresh=False)
                bar.update(runs)

        try:
            res = walkforward.run(spec, item, train, test, jobs=opts["jobs"],
                                  dask_address=os.environ.get("DASK_SCHEDULER_ADDRESS") or None,
                                  exact=not opts["float_oos"], progress=progress)
        except (engine.SetupError, rules.RuleError, sweep.GridError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            if bar is not None:
                bar.close()
        doc = {}

        def document():
            if not doc:
                doc.update(output.wf_document(res))
            return doc

        emit(self, opts, [
            ("plot", opts["plot"], lambda path: charts.write_walkforward_plot(res, path)),
            ("windows", opts["out_csv"], lambda path: tables.write_walkforward_csv(res, path)),
            ("workbook", opts["xlsx"], lambda path: tables.write_walkforward_xlsx(res, path)),
            ("JSON", opts["json_file"], lambda path: sweep_cmd.write_json(document(), path)),
        ], document, lambda: output.wf_table(res))
