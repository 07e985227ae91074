"""Headless Chromium for rendering tests: no network, a fresh profile, PNG screenshots.

Chromium comes from Debian (``make browser`` installs it in CI). When it is absent the tests
that need it skip with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# Flags from the machine notes: without the background-networking ones Chromium keeps trying
# to reach Google's hosts through a closed network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
ARTIFACTS = Path(__file__).parent / "artifacts"


def chromium() -> str:
    """Path of the Chromium executable, or skip the test with the reason."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (make browser installs it as root on Debian)")
    return exe


def screenshot(page: Path, png: Path, *, width: int, height: int) -> Path:
    """Render ``page`` (a local file) to ``png`` at ``width`` × ``height`` CSS pixels."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return png


def dump_dom(page: Path) -> str:
    """The page's DOM after Chromium has loaded it (what a reader's browser shows)."""
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [
                chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return out.stdout.decode("utf-8")
