"""Run every benchmark in turn: ``python -m bench [name ...]`` (default: all).

Each prints its figures as ratios against a baseline measured in the same run. Benchmarks
are not tests: they assert nothing and take a few minutes in total.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = sorted(p.stem for p in Path(__file__).parent.glob("*.py") if not p.stem.startswith("_"))


def main() -> int:
    names = sys.argv[1:] or BENCHES
    failed = []
    for name in names:
        print(f"== bench.{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
