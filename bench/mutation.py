"""Mutation testing of the money paths: how many deliberate small breakages the tests catch.

    .venv/bin/python bench/mutation.py                      # the fast subset (below)
    .venv/bin/python bench/mutation.py --all                # every mutant of the money paths
    .venv/bin/python bench/mutation.py 'orders.services.x_order_fill__mutmut_*'   # any globs

mutmut (pinned in requirements.txt; configured in setup.cfg: the rules, fills, dividends, the
ledger check, idempotency, and their tests) copies the project to ``mutants/``, makes every
small change it can to those files (a ``<`` for a ``<=``, a constant off by one, a dropped
argument, ...) and runs, for each, the tests that reach the changed function. A mutant the
tests fail on is *killed*; one they pass with *survived*: a change nobody would notice. The
run shows mutmut's progress line; at the end this prints the score (killed / checked) and
every survivor, with ``mutmut show NAME`` to see its diff. Results are kept in ``mutants/``
(git-ignored): a second run only re-checks what changed.

Set DATABASE_URL to a PostgreSQL to run the concurrency tests too (they skip on SQLite).

The fast subset is the rules' money arithmetic (trigger sizes, rounding, the fill's balance
change, the cash check, the default commission and the dividend amounts). The whole of
``evaluate`` and the database paths take hours on a small machine: every mutant there reruns
hundreds of property examples or a Django test database.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = [sys.executable, "-m", "mutmut"]
FAST = [f"positions.strategy.rules.x_{name}__mutmut_*" for name in (
    "_trigger_size", "_round_down", "cash_after_buy", "apply_fill", "default_commission",
    "dividend_amounts")]
# mutmut's exit codes per mutant (mutants/<file>.meta, see mutmut.stats): a failing test or
# an error (1, 3) and a timeout (the mutant hangs: noticed) kill it; passing tests (0) or no
# test reaching it (5, 33) let it survive.
KILLED = {1, 3, 36, 24, -24, 152, 255}
SURVIVED = {0, 5, 33}


def results(patterns: list[str] | None) -> tuple[list[str], list[str], int]:
    """(killed, survived, not yet checked) over the mutants matching ``patterns``."""
    killed, survived, unchecked = [], [], 0
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            if patterns and not any(fnmatch.fnmatch(name, p) for p in patterns):
                continue
            if code is None:
                unchecked += 1
            elif code in SURVIVED:
                survived.append(name)
            elif code in KILLED:
                killed.append(name)
            else:
                unchecked += 1
    return killed, survived, unchecked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("patterns", nargs="*", help="mutant name globs (default: the fast "
                        "subset)")
    parser.add_argument("--all", action="store_true", help="every mutant of setup.cfg's paths")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--report-only", action="store_true", help="print the last results")
    args = parser.parse_args()
    patterns = None if args.all else (args.patterns or FAST)
    if not args.report_only:
        cmd = [*MUTMUT, "run", "--max-children", str(args.max_children), *(patterns or [])]
        print("$", " ".join(cmd), flush=True)
        run = subprocess.run(cmd, cwd=ROOT)  # mutmut draws its own progress line
        if run.returncode not in (0, 1):
            print(f"mutmut failed (exit {run.returncode})", file=sys.stderr)
            return run.returncode
    killed, survived, unchecked = results(patterns)
    checked = len(killed) + len(survived)
    if not checked:
        print("No results: run without --report-only first.", file=sys.stderr)
        return 1
    print(f"\nMutation score: {len(killed)}/{checked} killed = {len(killed) / checked:.1%}"
          + (f" ({unchecked} not checked)" if unchecked else ""))
    if survived:
        print(f"{len(survived)} survived (see each with: .venv/bin/mutmut show NAME):")
        for name in survived:
            print("   ", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
