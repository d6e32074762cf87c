"""Copy a generated leaderboard into the README, between its bench markers.

python benchmarks/update_readme.py benchmarks/results/demo/leaderboard.md README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main(leaderboard: str, readme: str) -> None:
    path = Path(readme)
    text = path.read_text()
    if text.count(START) != 1 or text.count(END) != 1:
        raise SystemExit(f"{readme} needs exactly one {START} ... {END} block")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    table = Path(leaderboard).read_text().strip()
    path.write_text(f"{head}{START}\n{table}\n{END}{tail}")
    print(f"updated {readme} from {leaderboard}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
