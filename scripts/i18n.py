"""The lab's gettext catalogues, with Babel: extract the messages, update the .po files, compile the .mo files.

    python -m scripts.i18n update    # extract from app.py and lab_pages/, merge into locales/*/LC_MESSAGES/messages.po
    python -m scripts.i18n compile   # write messages.mo next to each .po (committed: the app needs no Babel)
    python -m scripts.i18n check     # exit 1 with a list of problems: untranslated, fuzzy, stale, .mo out of date
    python -m scripts.i18n merge zh_CN FILE.json ...   # take translations {msgid: text} from JSON files into the .po

Messages are the first argument of ``_()`` and ``N_()`` and both of ``ngettext()`` (see
lab_pages/i18n.py). A ``# TRANSLATORS:`` comment just above a call reaches the translator.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"
DOMAIN = "messages"
TARGETS = ("zh_CN",)  # English is the source language
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def sources() -> list[Path]:
    """The files whose strings a user sees: the router, every module of lab_pages/, and vae_core's
    error templates (marked ``N_``; the UI renders them with lab_pages.i18n.error_text)."""
    return [
        ROOT / "app.py",
        *sorted((ROOT / "lab_pages").glob("*.py")),
        *sorted((ROOT / "vae_core").glob("*.py")),
    ]


def extract() -> Catalog:
    """Every translatable message of :func:`sources`, as a template catalogue."""
    cat = Catalog(project="vae-workshop-lab", version="1", charset="utf-8")
    for path in sources():
        rel = path.relative_to(ROOT).as_posix()
        for lineno, msg, comments, context in extract_from_file(
            "python", str(path), keywords=KEYWORDS, comment_tags=("TRANSLATORS:",), strip_comment_tags=True
        ):
            cat.add(msg, locations=[(rel, lineno)], auto_comments=comments, context=context)
    return cat


def po_path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(lang: str) -> Catalog:
    """The .po catalogue of ``lang`` (an empty one for that locale when the file does not exist)."""
    p = po_path(lang)
    if not p.exists():
        return Catalog(locale=lang, project="vae-workshop-lab", version="1", charset="utf-8")
    with p.open("rb") as f:
        return read_po(f, locale=lang)


def _write_po(cat: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    write_po(buf, cat, width=100, omit_header=False, sort_output=False, include_previous=False)
    path.write_bytes(buf.getvalue())


def update(lang: str) -> Catalog:
    """Merge the extracted messages into ``lang``'s .po: new ones are added empty, gone ones dropped."""
    template = extract()
    cat = read_catalogue(lang)
    cat.update(template, no_fuzzy_matching=True, update_header_comment=False)
    cat.obsolete.clear()  # a message no page uses any more is stale: drop it
    _write_po(cat, po_path(lang))
    return cat


def mo_bytes(cat: Catalog) -> bytes:
    """The compiled .mo of a catalogue (fuzzy entries left out, as gettext expects)."""
    buf = io.BytesIO()
    write_mo(buf, cat, use_fuzzy=False)
    return buf.getvalue()


def compile_catalogue(lang: str) -> Path:
    """Write ``messages.mo`` beside ``lang``'s .po."""
    out = po_path(lang).with_suffix(".mo")
    out.write_bytes(mo_bytes(read_catalogue(lang)))
    return out


def problems(lang: str) -> list[str]:
    """What keeps ``lang``'s catalogue from being complete and in sync (empty when all is well)."""
    out: list[str] = []
    template = extract()
    cat = read_catalogue(lang)
    wanted = {m.id for m in template if m.id}
    have = {m.id: m for m in cat if m.id}
    for mid in sorted(wanted - set(have), key=str):
        out.append(f"missing from {lang}: {mid!r}")
    for mid, m in have.items():
        if mid not in wanted:
            out.append(f"stale in {lang} (no page uses it): {mid!r}")
            continue
        strings = m.string if isinstance(m.string, (list, tuple)) else [m.string]
        if not all(strings):
            out.append(f"untranslated in {lang}: {mid!r}")
        if m.fuzzy:
            out.append(f"fuzzy in {lang}: {mid!r}")
    mo = po_path(lang).with_suffix(".mo")
    if not mo.exists():
        out.append(f"{mo.relative_to(ROOT)} is missing: run python -m scripts.i18n compile")
    elif mo.read_bytes() != mo_bytes(cat):  # the committed .mo is exactly what compiling the .po gives
        out.append(f"{mo.relative_to(ROOT)} is out of date: run python -m scripts.i18n compile")
    return out


def merge(lang: str, files: list[Path]) -> tuple[int, list[str]]:
    """Put translations from JSON files ({msgid: text}; a plural msgid is ``singular\\x04plural`` with a list of
    texts) into ``lang``'s .po. Returns (how many were set, msgids of the files that the catalogue lacks)."""
    import json  # noqa: PLC0415

    cat = read_catalogue(lang)
    by_id = {(m.id if not isinstance(m.id, (list, tuple)) else "\x04".join(m.id)): m for m in cat if m.id}
    done, unknown = 0, []
    for path in files:
        for key, text in json.loads(Path(path).read_text(encoding="utf-8")).items():
            m = by_id.get(key)
            if m is None:
                unknown.append(key)
                continue
            if isinstance(m.id, (list, tuple)):
                m.string = tuple(text) if isinstance(text, list) else (text,)
            else:
                m.string = text if isinstance(text, str) else text[0]
            m.flags.discard("fuzzy")
            done += 1
    _write_po(cat, po_path(lang))
    return done, unknown


def main(argv: list[str] | None = None) -> int:
    """CLI: update, compile or check every target catalogue."""
    p = argparse.ArgumentParser(prog="python -m scripts.i18n", description=__doc__.split("\n")[0])
    p.add_argument("action", choices=["update", "compile", "check", "merge"])
    p.add_argument("args", nargs="*", help="merge: the language, then JSON files")
    args = p.parse_args(argv)
    if args.action == "merge":
        done, unknown = merge(args.args[0], [Path(a) for a in args.args[1:]])
        print(f"{done} translations merged into {po_path(args.args[0]).relative_to(ROOT)}")
        for key in unknown:
            print(f"not in the catalogue (run update first?): {key!r}")
        return 0
    bad = 0
    for lang in TARGETS:
        if args.action == "update":
            cat = update(lang)
            todo = sum(
                1
                for m in cat
                if m.id and not (m.string if not isinstance(m.string, (list, tuple)) else all(m.string))
            )
            print(f"{po_path(lang).relative_to(ROOT)}: {len(cat)} messages, {todo} to translate")
        elif args.action == "compile":
            print(f"wrote {compile_catalogue(lang).relative_to(ROOT)}")
        else:
            found = problems(lang)
            bad += len(found)
            for line in found:
                print(line)
    if args.action == "check":
        print("catalogues complete and in sync" if not bad else f"{bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
