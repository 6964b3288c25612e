"""Shared test fixtures: AppTest pages, and Playwright pointed at Debian's Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

from dlviz.browser import chromium_path  # noqa: E402
from dlviz.device import default_threads  # noqa: E402

# The same thread count as the app: on 2 cores one thread, which keeps tiny models from spin-waiting against
# each other (measured: the second thread made small RNN/GAN/optimizer tests up to 10x slower on a busy machine).
torch.set_num_threads(default_threads())


def _full_error_details() -> None:
    """config.toml sends browsers the error type only; tests want the whole message of any exception element."""
    from streamlit import config

    config.set_option("client.showErrorDetails", "full")


def open_page(page: str | None = None, timeout: float = 120, query: dict | None = None):
    """An AppTest of the whole app (sidebar included) switched to ``page`` (e.g. "pages/10_cnn.py")."""
    from streamlit.testing.v1 import AppTest

    _full_error_details()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(str(ROOT / page))
        at.run()
    return at


def refresh_until_trained(at, key: str, refreshes: int = 40):
    """Rerun (each run is one refresh of the live fragment) until the page's run has a snapshot past step 0.

    A refresh trains for a slice of 0.1 s; on a busy machine a slice can end with heartbeats only (the run is
    between snapshots), which the page shows as progress but ``runner.latest`` does not. Returns the runner."""
    for _ in range(refreshes):
        runner = at.session_state[f"{key}._runner"]
        if (runner.latest is not None and runner.latest.step > 0) or runner.status not in ("running",):
            break
        at.run()
    return at.session_state[f"{key}._runner"]


@pytest.fixture
def app_page():
    return open_page


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    path = chromium_path()  # None: Playwright's own download
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    return {**browser_type_launch_args, "args": args, **({"executable_path": path} if path else {})}
