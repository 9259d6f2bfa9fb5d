"""One name for each thing in Chinese: the zh_CN catalogue against the term table in docs/i18n.md (issue 24).

Page and button names appear in Chinese exactly as the table says, quoted with 「」 only; a term is translated
the one way the table gives; the forms marked *never* appear in no translation."""

from __future__ import annotations

import re
from typing import NamedTuple

import pytest

from scripts import i18n as cat
from tests.conftest import ROOT

DOC = ROOT / "docs" / "i18n.md"
FIELD = re.compile(r"\{[^{}]*\}|`[^`]*`|--[\w-]+")  # a str.format field ({epochs}), code (`…`), a CLI flag


class Term(NamedTuple):
    kind: str  # page | button | term | word
    english: str
    chinese: str
    never: tuple[str, ...]


def term_table() -> list[Term]:
    text = DOC.read_text(encoding="utf-8")
    body = text.split("<!-- terms -->", 1)[1].split("<!-- /terms -->", 1)[0]
    rows = [r for r in body.strip().splitlines()[2:] if r.startswith("|")]
    out = []
    for row in rows:
        kind, english, chinese, never = (c.strip() for c in row.strip().strip("|").split("|"))
        out.append(Term(kind, english, chinese, tuple(n.strip() for n in never.split(";") if n.strip())))
    return out


def messages() -> list[tuple[str, str]]:
    """(English, Chinese) of every translated message; a plural's forms each paired with its English plural."""
    pairs = []
    for m in cat.read_catalogue("zh_CN"):
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strs = m.string if isinstance(m.string, tuple) else (m.string,)
        for s in strs:
            if s:
                pairs.append((ids[-1], s))
    return pairs


TERMS = term_table()
MESSAGES = messages()


def test_the_table_is_read() -> None:
    kinds = {t.kind for t in TERMS}
    assert kinds == {"page", "button", "term", "word"} and len(TERMS) >= 20


@pytest.mark.parametrize("term", TERMS, ids=lambda t: t.english)
def test_never_the_other_forms(term: Term) -> None:
    bad = [(en, zh) for en, zh in MESSAGES for form in term.never if form in FIELD.sub("", zh)]
    assert not bad, f"{term.english!r} must be {term.chinese!r}, never {term.never}: {bad[:5]}"


@pytest.mark.parametrize("term", [t for t in TERMS if t.kind != "word"], ids=lambda t: t.english)
def test_one_name_wherever_the_english_has_it(term: Term) -> None:
    if term.kind in ("page", "button"):
        hits = [(en, zh) for en, zh in MESSAGES if term.english in en]
    else:
        hits = [(en, zh) for en, zh in MESSAGES if term.english.lower() in en.lower()]
    missing = [(en, zh) for en, zh in hits if term.chinese not in zh]
    assert not missing, f"{term.english!r} must read {term.chinese!r}: {missing[:5]}"


@pytest.mark.parametrize("term", [t for t in TERMS if t.kind in ("page", "button")], ids=lambda t: t.english)
def test_ui_names_are_quoted_with_corner_brackets(term: Term) -> None:
    quoted = re.compile(r"(\*+|“|\")\s*" + re.escape(term.chinese) + r"\s*(\*+|”|\")")
    bad = [zh for _en, zh in MESSAGES if quoted.search(zh)]
    assert not bad, f"quote {term.chinese!r} as 「{term.chinese}」: {bad[:5]}"
