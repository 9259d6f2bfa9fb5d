"""The README agrees with the code: its tour and workshop are lab_pages/tour.py's, its set-up
commands are the ones CI runs, its links lead somewhere, and the tour's pages are the router's."""

from __future__ import annotations

import re
from functools import cache

from babel.messages.pofile import read_po

from lab_pages import tour
from scripts import sync_readme
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")

# How the script names a control: *italic* or **bold** in English, 「…」 in Chinese (docs/i18n.md).
EN_NAME = re.compile(r"\*\*(.+?)\*\*|\*(.+?)\*")
ZH_NAME = re.compile(r"「([^」]+)」")
# UI names drawn the same in both languages, not through the catalogue: (name, file, the code that draws it)
UNTRANSLATED = (
    ("#", "lab_pages/images.py", 'f"#{idx}"'),  # the image picker's buttons read #<test index>
    (
        "🌐 语言 · Language",
        "lab_pages/sidebar.py",
        '"🌐 语言 · Language"',
    ),  # the language selector, bilingual
)
# What may follow a name in a control's label: nothing, a parenthesised or comma-separated qualifier, or a field
# ("Switch to the shipped VAE with d = 2 (fmnist_vae_z2)", "K, importance samples", "#981", "Latent map (UMAP)").
QUALIFIER = re.compile(r"(?:\s*[(（].*[)）]|[,，].*|\d+|\{\w*\})?", re.S)


def names_control(name: str, label: str) -> bool:
    """True when ``name`` (as a script or README quotes it) names the control whose label is ``label``."""
    return label.startswith(name) and QUALIFIER.fullmatch(label[len(name) :]) is not None


def script_names(text: str) -> list[str]:
    """The UI names an English script step quotes, *italic* or **bold**, in order."""
    return [a or b for a, b in EN_NAME.findall(text)]


@cache
def zh_catalogue() -> dict[str, str]:
    """msgid -> msgstr of the zh_CN catalogue (the .po; tests/test_i18n.py checks the .mo against it)."""
    path = ROOT / "locales" / "zh_CN" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        return {m.id: m.string for m in read_po(f, locale="zh_CN") if isinstance(m.id, str) and m.string}


def labels_named(name: str) -> list[str]:
    """The English labels (catalogue msgids, and the untranslated names) that ``name`` names."""
    fixed = [n for n, _file, _code in UNTRANSLATED if names_control(name, n)]
    return fixed + [m for m in zh_catalogue() if names_control(name, m)]


def zh_label(label: str) -> str:
    return zh_catalogue().get(label, label)


class TestOneSource:
    def test_readme_tour_and_workshop_are_generated_from_tour_py(self):
        assert sync_readme.render(README) == README, (
            "README.md is out of date: run .venv/bin/python -m scripts.sync_readme"
        )

    def test_a_changed_tour_makes_the_check_fail(self, monkeypatch):
        monkeypatch.setattr(tour, "WORKSHOP_NOTE", tour.WORKSHOP_NOTE + " (edited)")
        monkeypatch.setitem(sync_readme.SECTIONS, "workshop", tour.workshop_markdown)
        assert sync_readme.render(README) != README

    def test_home_draws_the_tour(self):
        src = (ROOT / "lab_pages" / "home.py").read_text(encoding="utf-8")
        assert "from lab_pages.tour import" in src and "PAGES" in src and "workshop_list_markdown" in src

    def test_tour_imports_nothing_heavy(self):
        src = (ROOT / "lab_pages" / "tour.py").read_text(encoding="utf-8")
        imports = {m.group(1) for m in re.finditer(r"^(?:from|import) (\S+)", src, re.M)}
        assert imports <= {"__future__", "dataclasses"}, imports

    def test_tour_pages_are_the_routers_pages(self):
        """The router's menu (tour.NAV) holds every page of the tour exactly once, and each page file exists."""
        routed = [path for _, items in tour.NAV for path, _icon in items]
        assert sorted(routed) == sorted(p.path for p in tour.PAGES) and len(routed) == len(set(routed))
        assert "tour.NAV" in (ROOT / "app.py").read_text(encoding="utf-8")
        for p in tour.PAGES:
            assert (ROOT / p.path).is_file(), p.path


class TestReadme:
    def test_it_starts_with_the_two_set_up_commands(self):
        commands = re.findall(r"```bash\n(.+?)\n```", README)
        assert commands[:2] == [
            "python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt && .venv/bin/streamlit run app.py",
            "python3 -m venv .venv && .venv/bin/pip install -q -r requirements-dev.txt && .venv/bin/python -m pytest -q",
        ]
        assert README.index(commands[1]) < README.index("<!-- tour:start")

    def test_the_test_command_is_the_one_ci_runs(self):
        """.ci/run makes the README's venv and install, then runs scripts/check, whose last step is the
        README's pytest command (with --durations=15)."""
        ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
        check = (ROOT / "scripts" / "check").read_text(encoding="utf-8")
        test_command = re.findall(r"```bash\n(.+?)\n```", README)[1]
        make_venv, install, pytest_command = test_command.split(" && ")
        assert f"{make_venv} && {install}" in ci
        assert "bash scripts/check\n" in ci
        assert pytest_command == ".venv/bin/python -m pytest -q"
        assert '"$bin/python" -m pytest -q --durations=15' in check and check.index("mypy") < check.index(
            "pytest -q"
        )

    def test_every_relative_link_leads_to_a_file(self):
        docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        missing = []
        for doc in docs:
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
                if "://" not in target and not (doc.parent / target).exists():
                    missing.append(f"{doc.relative_to(ROOT)} -> {target}")
        assert not missing, missing

    def test_no_removed_features_are_documented(self):
        for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
            text = doc.read_text(encoding="utf-8")
            for gone in (
                "--autograd",
                "fastgrad",
                "LeanAdam",
                "closed-form gradient",
                "gradient in closed form",
            ):
                assert gone not in text, (doc.name, gone)


class TestChineseReadme:
    ZH = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")

    def test_generated_from_tour_and_the_catalogue(self):
        assert sync_readme.render(self.ZH, "zh_CN") == self.ZH, (
            "README.zh-CN.md is out of date: run python -m scripts.sync_readme"
        )

    def test_the_readmes_link_to_each_other_and_share_the_commands(self):
        assert "(README.zh-CN.md)" in README and "(README.md)" in self.ZH
        commands = re.findall(r"```bash\n(.+?)\n```", self.ZH)
        assert commands[:2] == re.findall(r"```bash\n(.+?)\n```", README)[:2]

    def test_the_tour_is_in_chinese(self):
        tour_block = self.ZH.split("<!-- tour:start")[1].split("<!-- tour:end -->")[0]
        assert "| 页面 |" in tour_block and "**首页**" in tour_block and "重建" in tour_block, (
            "merge and compile the zh_CN catalogue, then run python -m scripts.sync_readme"
        )


class TestChineseReadmeNamesTheUI:
    """README.zh-CN.md quotes each button, slider and page as the Chinese UI labels it (issue #28)."""

    ZH = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")

    def test_the_untranslated_names_are_still_drawn_so(self):
        for name, file, code in UNTRANSLATED:
            assert code in (ROOT / file).read_text(encoding="utf-8"), (name, file)

    def test_every_quoted_name_is_a_label_of_the_ui(self):
        """Every 「…」 of the README (the generated tables and the hand-written text) is the catalogue's
        translation of an English label, or one of the few names drawn untranslated."""
        labels = [zh for zh in zh_catalogue().values()] + [n for n, _f, _c in UNTRANSLATED]
        wrong = [q for q in ZH_NAME.findall(self.ZH) if not any(names_control(q, lab) for lab in labels)]
        assert not wrong, f"README.zh-CN.md quotes names the UI does not show: {wrong}"

    def test_each_workshop_step_names_its_controls_as_the_ui_does(self):
        """Each English *name* of a workshop step names a label of the code; the Chinese row quotes that label's
        translation, and nothing else but page titles."""
        rows = self.ZH.split("<!-- workshop:start")[1].split("<!-- workshop:end -->")[0]
        for step in tour.WORKSHOP:
            zh_do = zh_catalogue()[step.do]
            assert zh_do.replace("|", "\\|") in rows, (
                f"the README's row {step.minutes} is not the catalogue's"
            )
            zh_names = set(ZH_NAME.findall(zh_do))
            for name in set(script_names(step.do)):
                labels = labels_named(name)
                assert labels, f"step {step.minutes}: *{name}* names no label of the UI"
                said = {z for z in zh_names if any(names_control(z, zh_label(lab)) for lab in labels)}
                assert said, (
                    f"step {step.minutes}: *{name}* is {[zh_label(lab) for lab in labels]} in the UI, "
                    f"but the Chinese step quotes {sorted(zh_names)}"
                )
                zh_names -= said
            pages = [
                zh_label(p.title) for p in tour.PAGES
            ]  # Chinese quotes page names the English leaves plain
            extra = {z for z in zh_names if not any(names_control(z, p) for p in pages)}
            assert not extra, f"step {step.minutes}: the Chinese step quotes {extra}, the English nothing"

    def test_a_renamed_button_breaks_it(self):
        assert names_control("切换到自带的 d = 2 的 VAE", "切换到自带的 d = 2 的 VAE（{name}）")
        assert names_control("K", "K, importance samples") and names_control("#", "#981")
        assert not names_control("切换到自带的 z=2 VAE", "切换到实验室自带的 z=2 VAE（fmnist_vae_z2）")
        assert not names_control("开始", "开始训练") and not names_control("Step", "Steps")
