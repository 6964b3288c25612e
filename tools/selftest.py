"""The README's test command: install what the tests need, find (or install) a Chromium, run the whole suite.

    python tools/selftest.py [pytest arguments...]

Standard library only, so it runs on a machine that has nothing installed yet. Steps:
1. ``python -m pip install -r requirements-dev.txt`` into the current Python environment;
2. a Chromium for the browser tests: ``$CHROMIUM_PATH``, then Debian's ``chromium`` (``chromium-browser``), then
   Playwright's own download; when none is there it installs one the way this platform allows:
   ``apt-get install chromium libatomic1`` on Debian/Ubuntu (as root, or with sudo that needs no password), else
   ``python -m playwright install chromium`` (macOS, Windows, other Linux: needs the network);
3. a two-second launch probe of that browser, so a broken one is one clear line, not a traceback per test;
4. ``python -m pytest`` with ``CHROMIUM_PATH`` set: without arguments the whole suite in two parts (the tests
   marked ``serial``, browser and timing tests, alone; the rest on two pytest-xdist workers); with arguments one
   run with exactly those arguments. The exit code is pytest's (the first failing part's).

The browser tests are never skipped: when no browser can be had, this exits 3 with one line saying what to
install. ``DLVIZ_NO_INSTALL=1`` skips every install step (use what is there; fail fast if the browser is missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_BROWSER = 3  # exit code when no browser can be found, installed or started
PROBE = """
import sys
from playwright.sync_api import sync_playwright
path = sys.argv[1] or None
with sync_playwright() as p:
    b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
    b.new_page().set_content("<p>ok</p>")
    b.close()
"""


def say(line: str) -> None:
    print(f"selftest: {line}", flush=True)


def run(cmd: list[str], quiet: bool = False, timeout: float | None = None) -> int:
    out = subprocess.DEVNULL if quiet else None
    try:
        return subprocess.run(cmd, stdout=out, stderr=out, timeout=timeout).returncode
    except (OSError, subprocess.TimeoutExpired):
        return 1


def system_chromium() -> str | None:
    env = os.environ.get("CHROMIUM_PATH")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def has_libatomic() -> bool:
    """Playwright's bundled node needs libatomic.so.1 on Linux; a minimal Debian image lacks it."""
    if not sys.platform.startswith("linux"):
        return True
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        return True  # cannot tell: the probe will
    return "libatomic.so.1" in listing


def apt_prefix() -> list[str] | None:
    """How to run apt-get here: directly as root, through sudo without a password, or not at all."""
    if not shutil.which("apt-get"):
        return None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return []
    if shutil.which("sudo") and run(["sudo", "-n", "true"], quiet=True) == 0:
        return ["sudo", "-n"]
    return None


def apt_install(packages: list[str]) -> bool:
    prefix = apt_prefix()
    if prefix is None:
        return False
    say(f"installing {' '.join(packages)} with apt-get (Debian/Ubuntu; about a minute on a fresh machine)")
    run(prefix + ["apt-get", "update", "-qq"], timeout=600)
    env_cmd = prefix + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
                        "--no-install-recommends", *packages]
    return run(env_cmd, timeout=900) == 0


def probe(path: str | None) -> bool:
    """Start the browser once through Playwright (a few seconds)."""
    return run([sys.executable, "-c", PROBE, path or ""], quiet=True, timeout=90) == 0


def find_browser(may_install: bool) -> tuple[str | None, bool]:
    """(executable path or None for Playwright's own build, usable?)."""
    path = system_chromium()
    if path and not has_libatomic() and may_install:
        apt_install(["libatomic1"])
    if path:
        return path, probe(path)
    if probe(None):  # Playwright's own download, installed earlier
        return None, True
    if not may_install:
        return None, False
    if apt_prefix() is not None:
        if apt_install(["chromium", "libatomic1"]):
            path = system_chromium()
            if path:
                return path, probe(path)
    say("installing Playwright's Chromium (python -m playwright install chromium; needs the network)")
    if run([sys.executable, "-m", "playwright", "install", "chromium"], quiet=True, timeout=900) == 0 \
            and probe(None):
        return None, True
    say("Playwright could not download Chromium here (no network, or an unsupported platform)")
    return None, False


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    may_install = os.environ.get("DLVIZ_NO_INSTALL", "") not in ("1", "true", "yes")
    if may_install:
        say("installing requirements-dev.txt into this Python environment")
        if run([sys.executable, "-m", "pip", "install", "-q", "-r", "requirements-dev.txt"]) != 0:
            say("pip could not install requirements-dev.txt: see the lines above")
            return 1
    path, ok = find_browser(may_install)
    if not ok:
        say("no usable Chromium for the browser tests: install Debian's chromium and libatomic1 "
            "(sudo apt-get install chromium libatomic1), or run `python -m playwright install chromium`, "
            "or set CHROMIUM_PATH to a Chromium executable; then run this command again")
        return NO_BROWSER
    env = dict(os.environ)
    if path:
        env["CHROMIUM_PATH"] = path
    if argv or not has_xdist():  # a chosen subset: one plain pytest run, arguments as given
        say(f"browser: {path or 'Playwright chromium'}; running python -m pytest {' '.join(argv)}".rstrip())
        return subprocess.run([sys.executable, "-m", "pytest", *argv], env=env).returncode
    # The whole suite in two parts: the tests that time things or drive a browser run alone (a second test
    # beside them would make their timing the machine's load); the rest on two pytest-xdist workers.
    say(f"browser: {path or 'Playwright chromium'}; running the suite: python -m pytest -n 2 -m 'not serial', "
        "then python -m pytest -m serial")
    parallel = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-m", "not serial"], env=env).returncode
    serial = subprocess.run([sys.executable, "-m", "pytest", "-m", "serial"], env=env).returncode
    return parallel or serial


def has_xdist() -> bool:
    return subprocess.run([sys.executable, "-c", "import xdist"], capture_output=True).returncode == 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
