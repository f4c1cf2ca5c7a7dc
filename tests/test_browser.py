"""The app in a real headless Chromium: it starts, the main controls work, no exception box shows,
and a screenshot of each view lands in test-output/screenshots/ for people to look at."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest
from conftest import ROOT, write_tiny_movielens

pytestmark = pytest.mark.slow
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = shutil.which("chromium")


def _require_chromium():
    if CHROMIUM:
        return
    message = "Debian's chromium is not installed (sudo apt-get install chromium chromium-driver)"
    if os.environ.get("CTXREC_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _start_server(log_name: str, env: dict[str, str] | None = None):
    """``streamlit run app.py`` on a free port; yields its address, then stops it."""
    _require_chromium()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(ROOT / "test-output" / log_name, "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.headless", "true"], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start; see test-output/{log_name}")
    try:
        yield url
    finally:  # a failed test must not leave its server running under the rest of the suite
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def server():
    yield from _start_server("streamlit-browser-test.log")


@contextmanager
def _recommend_tab(url: str, height: int = 2200):
    """A Chromium tab on the Recommend page, once its ranking is drawn."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        tab = browser.new_page(viewport={"width": 1400, "height": height})
        tab.goto(url, wait_until="domcontentloaded")
        tab.get_by_text("Why:").first.wait_for(timeout=180_000)
        yield tab
        browser.close()


@pytest.fixture
def page(server):
    with _recommend_tab(server) as tab:
        yield tab


def _settle(tab):
    """Wait until Streamlit has finished the rerun a widget started and drawn the cards."""
    tab.wait_for_timeout(500)
    tab.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)
    tab.get_by_role("button", name="👍").first.wait_for(timeout=120_000)


def _no_exception(tab):
    assert tab.locator('[data-testid="stException"]').count() == 0


def test_recommend_page_ranks_explains_and_takes_feedback(page):
    _no_exception(page)
    assert page.locator('[data-testid="stSidebar"]').get_by_text("device").count() >= 1
    intent = page.get_by_label("What do you want right now?")
    intent.fill("a quick vegetarian dinner to cook tonight")
    intent.press("Control+Enter")
    _settle(page)
    first = page.locator("strong", has_text="1. ").first
    first.wait_for()
    assert "recipe" in page.get_by_text("recipe ·").first.inner_text()
    # what was understood, as chips, and each card's match to the preferences
    page.get_by_role("button", name="vegetarian", exact=True).wait_for()
    page.get_by_role("button", name="likes: dinner").wait_for()
    page.get_by_text("Matches:").first.wait_for()
    page.screenshot(path=str(SHOTS / "recommend-understood.png"))
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    title = first.inner_text().split(". ", 1)[1]
    page.get_by_role("button", name="👍").first.click()
    _settle(page)
    liked = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Liked before")
    liked.filter(has_text=title).wait_for(timeout=60_000)  # a busy server redraws late
    page.get_by_text("attends to").first.wait_for(timeout=120_000)  # cards from the new history
    _no_exception(page)
    page.wait_for_timeout(1500)  # let the chart finish its transition
    page.screenshot(path=str(SHOTS / "recommend.png"))


def test_the_cost_panel_opens_in_the_browser(page):
    page.get_by_text("⏱️ Where the ").first.click()
    panel = page.locator('[data-testid="stExpander"]').filter(has_text="Where the ")
    panel.get_by_text("every item scored exactly").wait_for(timeout=60_000)
    panel.get_by_text("This server's start-up: imports").wait_for()
    panel.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    _no_exception(page)
    page.wait_for_timeout(1000)
    panel.screenshot(path=str(SHOTS / "recommend-costs.png"))


def test_a_model_that_cannot_load_shows_why_in_the_browser(page):
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="Encoder").click()
    page.get_by_role("option", name="Other (Hugging Face id or local folder)…").click()
    _settle(page)
    box = sidebar.get_by_label("Model id or folder")
    box.fill("/no/such/model/folder")
    box.press("Enter")
    _settle(page)
    sidebar.get_by_role("button", name="Load model").click()
    _settle(page)
    sidebar.get_by_text("Could not load").wait_for()
    assert page.get_by_text("Why:").count() >= 3  # the ranking stays up
    _no_exception(page)
    page.screenshot(path=str(SHOTS / "model-load-error.png"))


CHART = '[data-testid="stPlotlyChart"] .main-svg'


@pytest.mark.parametrize("path, ready", [("rerank", "text=Attention is not attribution"),
                                         ("attention", CHART), ("history_attention", CHART),
                                         ("similarity", CHART), ("learn", CHART),
                                         ("compare", CHART), ("scenarios", "text=Saved"),
                                         ("evaluate", 'role=tab[name="Load results"]'),
                                         ("train", 'role=tab[name="Saved models"]')])
def test_every_page_renders_in_the_browser(server, path, ready):
    from urllib.parse import urlencode

    from playwright.sync_api import sync_playwright

    link = urlencode({"when": "2026-11-21T19:30", "device": "tv", "with": "family,kids",
                      "intent": "a funny film to watch with the kids",
                      "liked": "film-01,game-22", "disliked": "film-02"})
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        tab = browser.new_page(viewport={"width": 1400, "height": 2000})
        tab.goto(f"{server}/{path}?{link}", wait_until="domcontentloaded")
        tab.locator(ready).first.wait_for(timeout=180_000)
        tab.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)
        tab.wait_for_timeout(1500)
        _no_exception(tab)
        assert tab.locator("h1").count() >= 1
        tab.screenshot(path=str(SHOTS / f"{path}.png"))
        browser.close()


READY = {"": "text=Why:", "rerank": "text=Attention is not attribution",
         "attention": "text=Attention shows where the model looks"}


def test_twenty_sessions_at_once_share_one_model(server):
    """20 browser sessions at once, a third each on the Recommend, LLM re-rank and Attention
    pages, each opening one scenario and then another: no errors, and the server loaded the
    encoder once and the LLM once for all of them."""
    import asyncio
    from urllib.parse import urlencode

    from playwright.async_api import async_playwright

    from ctxrec.data.context import context_to_params
    from ctxrec.data.scenarios import load_presets

    links = [urlencode(context_to_params(s.context)) for s in load_presets()]
    paths = list(READY)

    async def session(browser, n: int) -> int:
        tab = await browser.new_page(viewport={"width": 1200, "height": 900})
        path, errors = paths[n % len(paths)], 0
        for step in range(2):  # open one scenario, then switch to another
            await tab.goto(f"{server}/{path}?{links[(n + step * 3) % len(links)]}",
                           wait_until="domcontentloaded", timeout=600_000)
            await tab.locator(READY[path]).first.wait_for(timeout=600_000)
            errors += await tab.locator('[data-testid="stException"]').count()
        await tab.close()
        return errors

    async def main() -> list[int]:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            results = await asyncio.gather(*(session(browser, n) for n in range(20)))
            await browser.close()
            return results

    assert asyncio.run(main()) == [0] * 20
    log = (ROOT / "test-output" / "streamlit-browser-test.log").read_text()
    assert log.count("ctxrec: loaded encoder") == 1
    assert log.count("ctxrec: loaded LLM") == 1
    assert "Traceback" not in log


def test_bad_uploads_get_a_message_and_the_page_keeps_working(page, tmp_path):
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Upload CSV").click()
    _settle(page)
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("id,title\n1,Caf\xe9\n".encode("latin-1"))
    sidebar.locator('input[type="file"]').set_input_files(str(bad))
    sidebar.get_by_text("is not UTF-8 text").wait_for(timeout=60_000)
    assert sidebar.get_by_text("Built-in (multi-domain)").count() == 1  # previous catalog kept
    assert page.get_by_text("Why:").count() >= 3
    good = tmp_path / "mine.csv"
    good.write_text("id,title,description\n1,Dawn Loaf,A bakery at six.\n"
                    "2,Night Bus,Neon and rain.\n3,Sea Walk,Wind on the pier.\n,No Id,x\n")
    sidebar.locator('input[type="file"]').set_input_files(str(good))
    sidebar.get_by_text("mine.csv").first.wait_for(timeout=120_000)
    page.get_by_text("Wind on the pier.").wait_for(timeout=120_000)  # the new items are ranked
    _settle(page)
    assert sidebar.get_by_text("1 row problem(s)").count() == 1
    _no_exception(page)
    page.screenshot(path=str(SHOTS / "upload.png"))


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    listed = write_tiny_movielens(tmp_path_factory.mktemp("listed") / "ml-tiny")
    yield from _start_server("streamlit-shared-test.log", {
        "CTXREC_SHARED": "1", "CTXREC_SHARED_FOLDERS": str(listed),
        "CTXREC_SHARED_ENCODERS": "", "CTXREC_SHARED_LLMS": ""})


def test_shared_server_offers_only_listed_folders_and_models(shared_server):
    with _recommend_tab(shared_server, height=1600) as tab:
        sidebar = tab.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_text("Trust remote code").count() == 0
        assert tab.get_by_role("link", name="Evaluate").count() == 1  # its folders are listed too
        assert tab.get_by_role("link", name="Train").count() == 1
        sidebar.get_by_text("MovieLens", exact=True).click()
        sidebar.get_by_text("ml-tiny · 24 items").wait_for(timeout=120_000)
        folder = sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="MovieLens folder")
        assert folder.count() == 1
        assert sidebar.locator('[data-testid="stTextInput"]').count() == 0  # nothing to type
        _no_exception(tab)
        tab.screenshot(path=str(SHOTS / "shared-sidebar.png"))


def test_a_context_log_is_evaluated_on_the_evaluate_page(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from ctxrec import builtin_catalog

    ids = list(builtin_catalog().ids)
    rows = ["user,item,daytime,place"] + [
        f"u{u},{ids[(5 * u + 3 * j) % 60]},{('morning', 'evening')[j % 2]},"
        f"{('home', 'work')[u % 2]}" for u in range(15) for j in range(4)]
    log = tmp_path / "usage.csv"
    log.write_text("\n".join(rows) + "\n")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        tab = browser.new_page(viewport={"width": 1400, "height": 2000})
        tab.goto(f"{server}/evaluate", wait_until="domcontentloaded")
        tab.get_by_role("tab", name="Log with context").click()
        tab.locator('input[type="file"]').set_input_files(str(log))
        tab.get_by_text("usage.csv").first.wait_for(timeout=60_000)
        box = tab.get_by_role("textbox", name="Columns (FIELD=COLUMN)")
        box.fill("user=user item=item daytime=daytime place=place")
        box.press("Enter")
        tab.get_by_text("discovery: an item new to the user").click()
        tab.get_by_role("button", name="Run on the log").click()
        tab.get_by_text("usage.csv · discovery").wait_for(timeout=180_000)
        tab.get_by_text("Context against context blanked").wait_for()
        table = tab.locator('[data-testid="stDataFrame"]')
        table.wait_for()
        tab.wait_for_timeout(1500)
        _no_exception(tab)
        tab.screenshot(path=str(SHOTS / "evaluate-context-log.png"), full_page=True)
        browser.close()


def test_a_log_trained_context_model_in_the_browser(tmp_path):
    """Upload a log's catalog, attach the context model trained on that log from the Train page,
    pick the weather it learned, and see its effects and its attention."""
    from test_context_model import N_ITEMS, _planted_log

    home = tmp_path / "home"
    items = tmp_path / "items.csv"
    items.write_text("id,title\n" + "".join(f"a{j},Item {j}\n" for j in range(N_ITEMS)))
    events = _planted_log(tmp_path / "events.tsv")
    trained = subprocess.run(
        [sys.executable, "-m", "ctxrec", "train", "--log", str(events), "--catalog", str(items),
         "--map", "user=user", "item=item", "timestamp=t", "place=place", "--context",
         "weather=weather", "--item-repr", "id", "--hidden", "32", "--max-len", "12",
         "--epochs", "8", "--lr", "5e-3", "--batch-size", "32", "--average", "0", "--out",
         str(home / "models" / "planted-weather")], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "CTXREC_HOME": str(home)}, timeout=600)
    assert trained.returncode == 0, trained.stderr
    server = contextmanager(_start_server)("streamlit-context-model.log",
                                           {"CTXREC_HOME": str(home)})
    with server as url, _recommend_tab(url, height=2600) as tab:
        sidebar = tab.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Upload CSV").click()
        _settle(tab)
        sidebar.locator('input[type="file"]').set_input_files(str(items))
        sidebar.get_by_text("40 items").first.wait_for(timeout=120_000)
        tab.get_by_role("link", name="Train").click()
        tab.get_by_role("tab", name="Saved models").click()
        tab.get_by_role("button", name="Use this model in the app").click()
        # "Stop using it" is drawn disabled before the click's rerun: wait until it is enabled,
        # or the page change can overtake the attach on a loaded machine
        tab.locator('button:not([disabled])', has_text="Stop using it").wait_for(timeout=120_000)
        tab.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)
        assert tab.get_by_text("context learned from the log (tokens").count() == 1
        tab.get_by_role("link", name="Recommend").click()
        tab.get_by_text("Fields the attached model learned").wait_for(timeout=120_000)
        _settle(tab)
        for title in ("Item 3", "Item 14", "Item 25"):
            tab.locator('[data-testid="stMultiSelect"]').filter(has_text="Liked before").first \
                .click()
            tab.get_by_role("option").first.wait_for(timeout=60_000)  # the list is open
            tab.keyboard.type(title)  # the list is long: filter it to the item
            tab.get_by_role("option", name=re.compile(rf"^{title} ·")).click(timeout=60_000)
            tab.keyboard.press("Escape")  # close the list, which stays open after a pick
            _settle(tab)
        tab.locator('[data-testid="stSelectbox"]').filter(has_text="weather").first.click()
        tab.get_by_role("option", name="snow").click()
        _settle(tab)
        tab.get_by_text("With weather unknown").wait_for(timeout=120_000)
        tab.get_by_text("learned effect").first.wait_for()
        first = tab.locator("strong", has_text="1. Item 2").first  # a snow item: 20–29
        first.wait_for(timeout=60_000)
        _no_exception(tab)
        tab.wait_for_timeout(1500)
        tab.screenshot(path=str(SHOTS / "recommend-learned-context.png"), full_page=True)
        tab.get_by_role("link", name="Attention", exact=True).click()
        tab.get_by_text("each field of the context you set").wait_for(timeout=240_000)
        tab.locator(CHART).first.wait_for()
        tab.wait_for_timeout(1500)
        _no_exception(tab)
        tab.screenshot(path=str(SHOTS / "attention-learned-context.png"), full_page=True)
