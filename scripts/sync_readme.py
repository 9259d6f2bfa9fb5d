"""Write the tour and the workshop script from lab_pages/tour.py into README.md and, translated with the
zh_CN catalogue, into README.zh-CN.md, between their markers.

The Home page draws the same data, so the READMEs and the app cannot disagree. Run from the
project root after editing lab_pages/tour.py or its translations (tests/test_readme.py fails until you do):

    .venv/bin/python -m scripts.sync_readme            # rewrite README.md
    .venv/bin/python -m scripts.sync_readme --check    # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import gettext
import re
import sys
from pathlib import Path

from lab_pages.tour import tour_markdown, workshop_markdown

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
READMES = {
    README: None,
    ROOT / "README.zh-CN.md": "zh_CN",
}  # file -> the catalogue its text is translated with
SECTIONS = {"tour": tour_markdown, "workshop": workshop_markdown}  # marker name -> its text


def translator(lang: str | None):
    """``gettext`` of the compiled catalogue of ``lang`` (identity for English)."""
    if lang is None:
        return lambda s: s
    return gettext.translation(
        "messages", localedir=str(ROOT / "locales"), languages=[lang], fallback=True
    ).gettext


def render(text: str, lang: str | None = None) -> str:
    """``text`` with every ``<!-- NAME:start -->`` … ``<!-- NAME:end -->`` block regenerated (in ``lang``)."""
    tr = translator(lang)
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start[^>]*-->\n).*?(<!-- {name}:end -->)", re.S)
        if len(pattern.findall(text)) != 1:
            raise ValueError(f"a README needs exactly one <!-- {name}:start --> … <!-- {name}:end --> block")
        text = pattern.sub(lambda m, make=make: m.group(1) + make(tr) + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check; exit 1 when README.md is out of date")
    args = ap.parse_args(argv)
    stale = 0
    for path, lang in READMES.items():
        old = path.read_text(encoding="utf-8")
        new = render(old, lang)
        if new == old:
            continue
        if args.check:
            print(f"{path.name} is out of date: run .venv/bin/python -m scripts.sync_readme", file=sys.stderr)
            stale += 1
        else:
            path.write_text(new, encoding="utf-8")
            print(f"{path.name} updated")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
