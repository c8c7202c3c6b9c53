#!/usr/bin/env python3
"""Run every speed benchmark once and write their figures into the README and docs/speed.md.

    .venv/bin/pip install -r bench/requirements.txt    # pandas, backtesting (bench only)
    .venv/bin/python bench/speed_report.py [--only orders_load,trade_cycle] [--dry-run]

Runs, one after the other on this machine (keep it otherwise idle: each bench measures its own
floors in the same run, but two benches at once would measure each other):

- ``bench/orders_load.py``: submissions, replays and reads through gunicorn beside the SQL floor
  (pgbench) and the DRF floor;
- ``bench/trade_cycle.py``: the trade cycle on 20,000 positions beside its SQL floors;
- ``bench/sweep_speed.py``: ``manage.py sweep`` (400 cells) beside backtesting.py's optimize;
- ``bench/backtest_speed.py``: ``manage.py backtest`` on 1 M minute bars beside pandas' read and
  backtesting.py.

Each bench's output streams to the terminal as it runs (the benches print their own progress).
Then ``docs/speed.md`` gets every output in full, and the README's block between the
``speed:begin`` and ``speed:end`` markers gets each bench's summary (its figures beside their
floors and targets), with the date, the commit and the load average: the README's figures are
always a copy of the last run, never typed by hand. ``--dry-run`` (or ``--only`` with fewer than
the four) prints the block instead of writing; ``--from-doc`` runs nothing and writes the block
again from docs/speed.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ("orders_load", "trade_cycle", "sweep_speed", "backtest_speed")
BEGIN = "<!-- speed:begin (written by bench/speed_report.py; do not edit by hand) -->"
END = "<!-- speed:end -->"


def run(name: str) -> tuple[str, int]:
    """Run one bench, echoing its output line by line; (its output, its exit status)."""
    print(f"== bench/{name}.py", flush=True)
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / f"{name}.py")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    return "\n".join(lines), proc.wait()


# Where each bench's summary starts: from that line to the end of its output (its figures, floors,
# ratios and targets, after the progress of its runs).
SUMMARY_FROM = {
    "orders_load": "submissions ",
    "trade_cycle": "4 process(es) at once, wall",
    "sweep_speed": "floor: manage.py sweep of 1 cell",
    "backtest_speed": "pandas.read_csv, fresh process",
}


def summary(name: str, output: str) -> list[str]:
    """A bench's figures beside their floors and targets: its output from its summary's first
    line on (or, if a bench no longer prints that line, every line naming a target)."""
    lines = [line.rstrip() for line in output.splitlines()]
    start = next((i for i, line in enumerate(lines)
                  if line.startswith(SUMMARY_FROM.get(name, "\0"))), None)
    if start is None:
        return [line for line in lines if "target" in line.lower()]
    return [line for line in lines[start:] if line.strip()]


def from_doc() -> tuple[dict[str, tuple[str, int]], str, str, str]:
    """The outputs, time, commit and load of the last run, read back from docs/speed.md."""
    text = (ROOT / "docs" / "speed.md").read_text()
    head = re.search(r"\(([^,]+), commit `([^`]+)`, \d+ cores, load average at the end "
                     r"([0-9. ]+)\)", text)
    if head is None:
        raise SystemExit("docs/speed.md does not say when it was measured: run the benches")
    results = {m.group(1): (m.group(3), int(m.group(2) or 0)) for m in re.finditer(
        r"^## bench/(\w+)\.py(?: \(exit (\d+)\))?\n\n```text\n(.*?)\n```", text,
        re.S | re.M)}
    return results, head.group(1), head.group(2), head.group(3).strip()


def write_readme(text: str) -> None:
    readme = ROOT / "README.md"
    current = readme.read_text()
    if BEGIN not in current or END not in current:
        raise SystemExit(f"README.md has lost its markers: {BEGIN} ... {END}")
    head, rest = current.split(BEGIN, 1)
    readme.write_text(head + text + rest.split(END, 1)[1])


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True)
    return out.stdout.strip() or "unknown"


def block(results: dict[str, tuple[str, int]], when: str, rev: str, load: str) -> str:
    lines = [BEGIN, "", f"Measured {when} at commit `{rev}` by `bench/speed_report.py` on "
             f"{os.cpu_count()} cores (load average at the end {load}); every output in full: "
             "[docs/speed.md](docs/speed.md).", "", "```text"]
    for name, (output, status) in results.items():
        lines.append(f"bench/{name}.py" + ("" if status == 0 else f"  (exit {status})"))
        lines.extend(f"  {line}" for line in summary(name, output))
    lines += ["```", "", END]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHES),
                        help="comma-separated benches to run (default: all four); a part of "
                             "them only prints its block, so the files always hold one run")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the README block; write nothing")
    parser.add_argument("--from-doc", action="store_true",
                        help="run nothing: write the README block again from the outputs in "
                             "docs/speed.md (after a change to this script's summary)")
    args = parser.parse_args()
    if args.from_doc:
        write_readme(block(*from_doc()))
        print("README.md written from docs/speed.md")
        return 0
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(names) - set(BENCHES))
    if unknown or not names:
        parser.error(f"--only takes some of {', '.join(BENCHES)}; not {', '.join(unknown)}")
    results = {name: run(name) for name in names}
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rev = commit()
    text = block(results, when, rev, load)
    if args.dry_run or len(names) < len(BENCHES):
        print(text)
        return max(status for _, status in results.values())
    write_readme(text)
    doc = [
        "# Speed: the benchmarks' last run",
        "",
        f"Written by `bench/speed_report.py` ({when}, commit `{rev}`, {os.cpu_count()} cores, "
        f"load average at the end {load}). Each bench measures its floors in the same run; "
        "what each figure means and how the floors are built is in the bench's own docstring "
        "and in [backtests.md](backtests.md#speed), [research.md](research.md#speed), "
        "[brokers.md](brokers.md#speed) and [proof.md](proof.md).",
        "",
    ]
    for name, (output, status) in results.items():
        doc += [f"## bench/{name}.py" + ("" if status == 0 else f" (exit {status})"), "",
                "```text", output.rstrip(), "```", ""]
    (ROOT / "docs" / "speed.md").write_text("\n".join(doc))
    print(f"README.md and docs/speed.md written ({', '.join(names)})")
    return max(status for _, status in results.values())


if __name__ == "__main__":
    raise SystemExit(main())
