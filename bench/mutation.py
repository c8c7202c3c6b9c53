"""Mutation testing of the money paths: how many deliberate small breakages the tests catch.

    .venv/bin/python bench/mutation.py                    # the money subset (below), every module
    .venv/bin/python bench/mutation.py book ledger        # some modules of it
    .venv/bin/python bench/mutation.py --all              # every mutant of setup.cfg's files
    .venv/bin/python bench/mutation.py 'orders.services.x_order_fill__mutmut_*'   # any globs
    .venv/bin/python bench/mutation.py --report-only      # the last results again

mutmut (pinned in requirements.txt; configured in setup.cfg: the rules, fills, dividends, the
ledger check, idempotency, and their tests) copies the project to ``mutants/``, makes every
small change it can to those files (a ``<`` for a ``<=``, a constant off by one, a dropped
argument, ...) and runs, for each, only the tests that reached the changed function in its
first (stats) run, stopping at the first failure, under a CPU-time limit (setup.cfg's
timeout_*). A mutant the tests fail on is *killed* (a timeout counts as killed: the breakage
was noticed); one they pass with *survived*: a change nobody would notice. This prints the
score per module and in total, then every survivor with its file, function and diff.
Results are kept in ``mutants/`` (git-ignored); ``--report-only`` reprints them.

The money subset is a fixed list of the functions that move money (SUBSET), and of their
mutants a fixed sample: those whose number ends in 1 (1 in 10, spread over every function;
about 100 mutants, half an hour on two shared cores). ``--every-mutant`` checks all of the
subset's (about 940: hours); ``--all`` every function of the files (about 3800: a day).
``--resume`` continues an interrupted run. The run is niced (``--nice``, default 15): it
keeps the cores busy for a quarter of an hour or more. Set DATABASE_URL to a PostgreSQL to run the
concurrency tests too (they skip on SQLite).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = [sys.executable, "-m", "mutmut"]
VERDICTS = ROOT / "mutants" / "bench-verdicts.json"

# module (as mutmut names it) -> the functions whose every mutant the default run checks
SUBSET: dict[str, tuple[str, ...]] = {
    "positions.strategy.rules.book": (   # the fill's arithmetic, dividends
        "apply_fill", "cash_after_buy", "default_commission", "dividend_amounts",
        "slipped_price"),
    "positions.strategy.rules.evaluate": ("_trigger_size", "_round_down"),  # sizes, rounding
    "orders.services": ("order_fill",),  # the fill service
    "positions.books": ("fill_effect", "fill", "ex_dividend", "dividend_paid"),  # the books
    "positions.workflows.corporate_actions": ("_go_effective", "_go_paid",
                                              "shares_at_start_of"),
    "positions.workflows.ledger": ("_step", "_compare"),  # the ledger check
    "orders.idempotency": ("key_problem", "_number", "_canonical", "fingerprint"),
}
SHORT = {"book": "positions.strategy.rules.book", "evaluate": "positions.strategy.rules.evaluate",
         "services": "orders.services",
         "books": "positions.books", "dividends": "positions.workflows.corporate_actions",
         "ledger": "positions.workflows.ledger",
         "idempotency": "orders.idempotency"}
# mutmut's exit code per mutant (mutants/<file>.meta; mutmut.stats.status_by_exit_code)
KILLED = {1, 3}                           # a failing test, a test error
TIMEOUT = {24, -24, 36, 152, 255}         # over setup.cfg's time limit: counted as killed
SURVIVED = {0}
NO_TESTS = {5, 33}                        # no test reached the function: survived too


# the default run checks a fixed sample of those: the mutants whose number ends in 1 (1 in
# 10, spread over every function); --every-mutant checks them all
SAMPLE = "1"


def globs_of(modules: list[str], sample: str) -> list[str]:
    return [f"{m}.x_{f}__mutmut_*{sample}" for m in modules for f in SUBSET[m]]


def module_of(name: str) -> str:
    return name.rsplit(".", 1)[0]


def function_of(name: str) -> str:
    return name.rsplit(".", 1)[1].removeprefix("x_").split("__mutmut_")[0]


def _read_json(path: Path, default):
    for _ in range(20):  # mutmut rewrites its files while it runs
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return default
        except json.JSONDecodeError:
            time.sleep(0.1)
    return default


def verdicts() -> dict[str, int]:
    """mutant -> its last exit code, kept in VERDICTS across runs while its function's code
    is unchanged. mutmut forgets every verdict when the test selection in setup.cfg changes
    (a new test file); this keeps them, so ``--survivors`` can recheck only the survivors
    (tests only added: a killed mutant stays killed)."""
    stats = _read_json(ROOT / "mutants" / "mutmut-stats.json", {})
    hashes = stats.get("function_hashes", {})
    kept = _read_json(VERDICTS, {})
    current: dict[str, int] = {}
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        for name, code in _read_json(meta, {}).get("exit_code_by_key", {}).items():
            digest = hashes.get(name.split("__mutmut_")[0])
            if code is not None:
                current[name] = code
                kept[name] = [code, digest]
            elif name in kept and kept[name][1] == digest and digest is not None:
                current[name] = kept[name][0]
            else:
                current[name] = None
    VERDICTS.write_text(json.dumps(kept, indent=0, sort_keys=True))
    return current


def results(patterns: list[str] | None) -> dict[str, dict[str, list[str]]]:
    """module -> {"killed": [...], "timeout": [...], "survived": [...], "unchecked": [...]}
    over the mutants matching ``patterns`` (all when None)."""
    out: dict[str, dict[str, list[str]]] = defaultdict(
        lambda: {"killed": [], "timeout": [], "survived": [], "unchecked": []})
    for name, code in sorted(verdicts().items(), key=lambda kv: _natural(kv[0])):
        if patterns and not any(fnmatch.fnmatch(name, p) for p in patterns):
            continue
        kind = ("killed" if code in KILLED else "timeout" if code in TIMEOUT
                else "survived" if code in SURVIVED | NO_TESTS else "unchecked")
        out[module_of(name)][kind].append(name)
    return out


def _natural(name: str) -> tuple[str, int]:
    head, _, n = name.rpartition("__mutmut_")
    return head, int(n) if n.isdigit() else 0


def diff_of(name: str) -> str:
    shown = subprocess.run([*MUTMUT, "show", name], cwd=ROOT, capture_output=True, text=True)
    return "\n".join(line for line in shown.stdout.splitlines()
                     if line[:2] in ("- ", "+ ", "@@"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="modules of the subset (book, evaluate, "
                        "services, dividends, ledger, idempotency) or mutant name globs; "
                        "default: all of the subset")
    parser.add_argument("--all", action="store_true", help="every mutant of setup.cfg's files")
    parser.add_argument("--every-mutant", action="store_true", help="every mutant of the "
                        "subset's functions, not the sample of 1 in 10")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--nice", type=int, default=15, help="niceness of the run (default 15)")
    parser.add_argument("--survivors", action="store_true", help="recheck only the mutants "
                        "that survived the last run (after adding tests)")
    parser.add_argument("--resume", action="store_true", help="check only the mutants without "
                        "a verdict yet (an interrupted run)")
    parser.add_argument("--report-only", action="store_true", help="print the last results")
    parser.add_argument("--no-diffs", action="store_true", help="name the survivors only")
    args = parser.parse_args()

    if args.all:
        patterns = None
    else:
        modules = [SHORT.get(t, t) for t in args.targets if SHORT.get(t, t) in SUBSET]
        others = [t for t in args.targets if SHORT.get(t, t) not in SUBSET]
        sample = "" if args.every_mutant else SAMPLE
        patterns = (globs_of(modules, sample) + others if args.targets
                    else globs_of(list(SUBSET), sample))

    names = patterns or []
    if args.resume:
        names = [n for kinds in results(patterns).values() for n in kinds["unchecked"]]
    if args.survivors:
        names = [n for kinds in results(patterns).values() for n in kinds["survived"]]
    if not names and (args.survivors or args.resume):
        print("Nothing to check.")
    elif not args.report_only:
        if args.nice:
            os.nice(args.nice)
        cmd = [*MUTMUT, "run", "--max-children", str(args.max_children), *names]
        print("$", " ".join(cmd), flush=True)
        started = time.monotonic()
        run = subprocess.run(cmd, cwd=ROOT)  # mutmut draws its own progress line
        print(f"\nmutmut ran {time.monotonic() - started:.0f} s", flush=True)
        if run.returncode not in (0, 1):
            print(f"mutmut failed (exit {run.returncode})", file=sys.stderr)
            return run.returncode

    by_module = results(patterns)
    total_killed = total_checked = 0
    print("\nMutation score (killed / checked):")
    for module, kinds in sorted(by_module.items()):
        killed = len(kinds["killed"]) + len(kinds["timeout"])
        checked = killed + len(kinds["survived"])
        total_killed, total_checked = total_killed + killed, total_checked + checked
        notes = [f"{len(kinds['timeout'])} by timeout"] if kinds["timeout"] else []
        notes += [f"{len(kinds['unchecked'])} not checked"] if kinds["unchecked"] else []
        if checked:
            print(f"  {module:28} {killed:4}/{checked:<4} = {killed / checked:6.1%}"
                  + (f"  ({', '.join(notes)})" if notes else ""))
    if not total_checked:
        print("No results: run without --report-only first.", file=sys.stderr)
        return 1
    print(f"  {'total':28} {total_killed:4}/{total_checked:<4} = "
          f"{total_killed / total_checked:6.1%}")

    survivors = [n for kinds in by_module.values() for n in kinds["survived"]]
    if survivors:
        print(f"\n{len(survivors)} survived:")
        for name in survivors:
            path = module_of(name).replace(".", "/") + ".py"
            print(f"\n{path}  {function_of(name)}  ({name})")
            if not args.no_diffs:
                print(diff_of(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
