"""report.html in headless Chromium: every image loads and the claims table is on the page.

The page's own load script writes ``loaded/total`` images into ``<html data-images=...>``;
``chromium --dump-dom`` prints the DOM after the load event, so the test reads it from there.
Skipped, with the reason, where no Chromium is installed (``.ci/run`` installs Debian's).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rankrobust.report.build import build_report
from test_report_build import make_db

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"
)


SCREEN = (1280, 1000)  # CSS pixels: the window the one-screen summary must fit


def dump_dom(page: Path, profile: Path) -> str:
    """The page's DOM after load, serialized by headless Chromium in a window of SCREEN."""
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           f"--window-size={SCREEN[0]},{SCREEN[1]}", "--hide-scrollbars",
           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    return build_report(make_db(root / "results.db", seeds=(0, 1)), root / "out")


def test_every_image_loads_and_claims_table_is_present(report: Path, tmp_path: Path) -> None:
    dom = dump_dom(report, tmp_path / "profile")
    found = re.search(r'<html[^>]*data-images="(\d+)/(\d+)"', dom)
    assert found, "the page's load script did not run"
    loaded, total = int(found.group(1)), int(found.group(2))
    assert total == len(list((report.parent / "figures").glob("*.png"))) == 8
    assert loaded == total
    tables = dict(re.findall(r'<table id="claims-(c\d)">(.*?)</table>', dom, re.S))
    assert set(tables) == {"c1", "c2", "c3", "c4"}, "a per-claim table is missing"
    assert all(re.search(r'class="verdict-(holds|does-not-hold|inconclusive)', t) for t in tables.values())


def test_the_summary_fits_one_screen_before_the_details(report: Path, tmp_path: Path) -> None:
    """Verdicts, the frontier figure and the accuracy table come first and end within one
    1280 × 1000 window; the per-row claims table comes after them."""
    dom = dump_dom(report, tmp_path / "profile")
    bottom = re.search(r'<html[^>]*data-summary-bottom="(\d+)"', dom)
    assert bottom, "the page's load script found no summary group"
    assert int(bottom.group(1)) <= SCREEN[1], bottom.group(1)
    order = [dom.index(s) for s in ('<h2 id="summary">', 'id="claims-summary"',
                                    'src="figures/frontier.png"', 'id="headline"',
                                    '<h2 id="claims-in-detail">', 'id="claims-c1"')]
    assert order == sorted(order)


def test_a_missing_image_is_detected(report: Path, tmp_path: Path) -> None:
    """The check can fail: remove one PNG from a copy and the page reports 7/8."""
    copy = tmp_path / "copy"
    shutil.copytree(report.parent, copy)
    (copy / "figures" / "spectra.png").unlink()
    dom = dump_dom(copy / "report.html", tmp_path / "profile")
    assert 'data-images="7/8"' in dom
    assert "1 of 8 figures failed to load" in dom
