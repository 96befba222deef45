"""How long an ``indicator-exchange`` command takes from exec to exit: wall and user+sys CPU, median of N runs.

Each run is a fresh interpreter (``python -c "from indicator_exchange.cli import main; main()" ARGS``, what
the console script does) on a throwaway SQLite store at head. ``--source DIR`` runs the package found in DIR
(e.g. an exported older revision) with this virtual environment, for a before/after under the same load.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (["--help"], ["db", "current"], ["admin", "principal", "list"], ["sync", "--once"])


def _run(args: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from indicator_exchange.cli import main; main()", *args],
        env=env,
        cwd=cwd,  # not the checkout: `python -c` puts the working directory first on sys.path
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--source", type=Path, help="Directory holding the indicator_exchange package to run.")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IX_")}
        env["IX_DATABASE_URL"] = f"sqlite:///{scratch}/bench.db"
        if options.source is not None:
            env["PYTHONPATH"] = str(options.source.resolve())
        _run(["db", "upgrade"], env, scratch)
        print(f"load average {os.getloadavg()[0]:.2f}; median of {options.runs} runs")
        for args in COMMANDS:
            _run(args, env, scratch)  # warm the page cache and the bytecode
            runs = [_run(args, env, scratch) for _ in range(options.runs)]
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(f"{' '.join(args):24} wall {wall:.3f} s   user+sys {cpu:.3f} s")
        print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
