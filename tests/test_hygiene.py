"""Tree-wide rules: no file edits sys.path (pyproject.toml's pytest pythonpath and the editable
install find the packages), and every benchmark documents how it is run (as a module of bench/)."""

from __future__ import annotations

import os
import re

from tests.conftest import ROOT

SKIP_DIRS = {".venv", ".git", "__pycache__", ".pytest_cache", "data", "node_modules"}
BINARY = (".png", ".jpg", ".safetensors", ".gz", ".pyc", ".whl", ".so")
NEEDLE = "sys.path" + ".insert"  # spelled apart, so that this file does not match itself


def repo_files():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            if not name.endswith(BINARY):
                yield os.path.join(dirpath, name)


def test_no_file_inserts_into_sys_path():
    hits = []
    for path in repo_files():
        with open(path, "rb") as fh:
            if NEEDLE.encode() in fh.read():
                hits.append(os.path.relpath(path, ROOT))
    assert not hits, f"{NEEDLE} in {hits}: pyproject.toml's pythonpath and `python -m` find the packages"


def test_every_bench_is_run_as_a_module_and_says_so():
    benches = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))
    assert benches
    for p in benches:
        src = p.read_text(encoding="utf-8")
        assert f"-m bench.{p.stem}" in src.split('"""')[1], (
            f"{p.name}: its usage line should read `python -m bench.{p.stem}`"
        )
        assert not re.search(r"python3? bench/", src), f"{p.name} still documents `python bench/{p.stem}.py`"


def test_benches_share_one_chromium_launcher():
    for p in sorted((ROOT / "bench").glob("*.py")):
        if p.name != "_common.py":
            src = p.read_text(encoding="utf-8")
            assert "chromium.launch(" not in src and '/usr/bin/chromium"' not in src, p.name


def test_the_browserless_room_needs_no_browser():
    """bench.room and its client speak Streamlit's protocol themselves; the Chromium room is bench.room_browser."""
    for name in ("room.py", "st_client.py"):
        src = (ROOT / "bench" / name).read_text(encoding="utf-8")
        assert "playwright" not in src and "chromium" not in src.lower(), f"bench/{name} drives a browser"
    assert "missing_chromium" in (ROOT / "bench" / "room_browser.py").read_text(encoding="utf-8")
