"""Seconds from `streamlit run app.py` to the first ranking on screen, in headless Chromium, with
warm caches (the embedding cache filled by a first run); prints JSON with each run and the app's
own start-up panel of the last one.

    .venv/bin/python scripts/startup_time.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def one_run(browser) -> tuple[float, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                               "--server.port", str(port), "--server.address", "127.0.0.1",
                               "--server.headless", "true"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tab = browser.new_page(viewport={"width": 1400, "height": 1800})
        while True:  # the page is asked for as soon as the server answers, as a person would
            try:
                tab.goto(f"http://127.0.0.1:{port}", wait_until="domcontentloaded", timeout=1000)
                break
            except Exception:  # noqa: BLE001  (not listening yet)
                time.sleep(0.05)
        tab.get_by_text("Why:").first.wait_for(timeout=120_000)
        seconds = time.perf_counter() - start
        tab.get_by_text("Where the ").first.click()
        panel = tab.get_by_text("This server's start-up:").first
        panel.wait_for(timeout=30_000)
        return seconds, panel.inner_text()
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        one_run(browser)  # warms the embedding cache and the OS file cache
        runs = [one_run(browser) for _ in range(args.runs)]
        browser.close()
    seconds = [r[0] for r in runs]
    print(json.dumps({"benchmark": "startup", "runs_s": [round(s, 2) for s in seconds],
                      "median_s": round(sorted(seconds)[len(seconds) // 2], 2),
                      "app_panel": runs[-1][1]}, indent=2))


if __name__ == "__main__":
    main()
