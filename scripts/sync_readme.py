"""Write the tour and the workshop script from lab_pages/tour.py into README.md, between its markers.

The Home page draws the same data, so the README and the app cannot disagree. Run from the
project root after editing lab_pages/tour.py (tests/test_readme.py fails until you do):

    .venv/bin/python -m scripts.sync_readme            # rewrite README.md
    .venv/bin/python -m scripts.sync_readme --check    # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from lab_pages.tour import tour_markdown, workshop_markdown

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = {"tour": tour_markdown, "workshop": workshop_markdown}  # marker name -> its text


def render(text: str) -> str:
    """``text`` with every ``<!-- NAME:start -->`` … ``<!-- NAME:end -->`` block regenerated."""
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start[^>]*-->\n).*?(<!-- {name}:end -->)", re.S)
        if len(pattern.findall(text)) != 1:
            raise ValueError(f"README.md needs exactly one <!-- {name}:start --> … <!-- {name}:end --> block")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check; exit 1 when README.md is out of date")
    args = ap.parse_args(argv)
    old = README.read_text(encoding="utf-8")
    new = render(old)
    if args.check:
        if new != old:
            print("README.md is out of date: run .venv/bin/python -m scripts.sync_readme", file=sys.stderr)
            return 1
        return 0
    if new != old:
        README.write_text(new, encoding="utf-8")
        print("README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
