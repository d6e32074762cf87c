"""Copy a generated table into the README, between its markers.

python benchmarks/update_readme.py TABLE.md README.md [NAME]

NAME (default ``bench``) picks the block ``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(leaderboard: str, readme: str, name: str = "bench") -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    path = Path(readme)
    text = path.read_text()
    if text.count(start) != 1 or text.count(end) != 1:
        raise SystemExit(f"{readme} needs exactly one {start} ... {end} block")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    table = Path(leaderboard).read_text().strip()
    path.write_text(f"{head}{start}\n{table}\n{end}{tail}")
    print(f"updated {readme} from {leaderboard}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
