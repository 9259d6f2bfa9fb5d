"""The README agrees with the code: its tour and workshop are lab_pages/tour.py's, its set-up
commands are the ones CI runs, its links lead somewhere, and the tour's pages are the router's."""

from __future__ import annotations

import re

from lab_pages import tour
from scripts import sync_readme
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


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
