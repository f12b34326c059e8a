"""The web page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``scripts/install-test-services.sh``) driven by Selenium
against a running service fed by the simulator at an accelerated clock.

It checks what a user sees: the table lists every stream, the chart's canvas has candles drawn
on it (pixels in the candle colours, not only the page's own bar count), a new closed candle
appears without a reload, and the page reconnects by itself after the server restarts. A
screenshot goes to ``tests/artifacts/web-page.png`` (its path is printed); with
``CANDLEKEEPER_UPDATE_SCREENSHOT=1`` it also replaces ``docs/images/web-page.png`` (the README's).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from webkit import free_port, running_service, wait_for, web_config

from candlekeeper.sim import Simulator

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "tests" / "artifacts" / "web-page.png"
README_SHOT = REPO / "docs" / "images" / "web-page.png"
CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
VENUES = ("binance-usdm", "okx-swap")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
INTERVALS = ("1m", "5m")
SPEED = 120.0  # a 1m candle every 0.5 s of wall time

#: pixels of the candle colours on the chart's canvases (lightweight-charts' defaults)
_CANDLE_PIXELS = """
let n = 0;
for (const cv of document.querySelectorAll('#chart canvas')) {
  const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
  for (let i = 0; i < d.length; i += 4) {
    const up = Math.abs(d[i] - 38) < 8 && Math.abs(d[i + 1] - 166) < 8
               && Math.abs(d[i + 2] - 154) < 8;
    const down = Math.abs(d[i] - 239) < 8 && Math.abs(d[i + 1] - 83) < 8
                 && Math.abs(d[i + 2] - 80) < 8;
    if (d[i + 3] > 200 && (up || down)) n++;
  }
}
return n;
"""


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium. Missing on a machine that ran ``make test`` is impossible (the test
    setup installs it): fail with what to do, never skip."""
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.fail(f"{CHROMIUM} and {DRIVER} are needed: run scripts/install-test-services.sh "
                    "(apt-get install chromium chromium-driver)", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,860", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=DriverService(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


async def _js(driver: Any, script: str) -> Any:
    """Run ``script`` in the page, off the event loop (the service runs on it)."""
    return await asyncio.to_thread(driver.execute_script, script)


async def _until(driver: Any, script: str, ok: Callable[[Any], bool], timeout: float,
                 what: str) -> Any:
    value: Any = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = await _js(driver, script)
                if ok(value):
                    return value
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what} "
                             f"(last: {value!r})") from None


async def test_page_in_headless_chromium(tmp_path: Path, browser: Any) -> None:
    port = free_port()
    async with Simulator(venues=VENUES, symbols=SYMBOLS, intervals=INTERVALS,
                         speed=SPEED) as sim:
        cfg = web_config(sim, tmp_path / "c.sqlite", VENUES, SYMBOLS, INTERVALS, port)
        async with running_service(cfg, sim) as service:
            url = service.page_url
            assert url is not None and service.health is not None
            await asyncio.to_thread(browser.get, url + "?stream=binance-usdm:BTCUSDT:1m")
            await _js(browser, "window.notReloaded = true")
            # the table lists every stream
            keys = {f"{v} {s} {i}" for v in VENUES for s in SYMBOLS for i in INTERVALS}
            rows = await _until(
                browser, "return [...document.querySelectorAll('#streams tbody tr')].map("
                "tr => [...tr.cells].slice(0, 3).map(td => td.textContent).join(' '))",
                lambda r: set(r) == keys, 30, "every stream in the table")
            assert len(rows) == len(keys)
            # the chart holds candles, and they are drawn on its canvas
            await _until(browser, "return window.candlekeeper.bars", lambda n: n >= 20, 30,
                         "20 candles on the chart")
            await _until(browser, _CANDLE_PIXELS, lambda n: n > 500, 20,
                         "candle-coloured pixels on the chart's canvas")
            # a new closed candle appears without a reload
            last = await _js(browser, "return window.candlekeeper.lastClosed")
            await _until(browser, "return window.candlekeeper.lastClosed",
                         lambda t: t is not None and t > last, 20, "a new closed candle")
            assert await _js(browser, "return window.notReloaded") is True
            # the table follows the service: every stream live with a last close, as it shows
            await _until(browser, "return [...document.querySelectorAll('#streams tbody tr')]"
                         ".every(tr => tr.cells[3].textContent === 'live' && "
                         "tr.cells[4].textContent !== '')", bool, 30,
                         "every stream live with a last close in the table")
            await _shoot(browser)
            # the server goes away and comes back: the page reconnects by itself
            opens = await _js(browser, "return window.candlekeeper.opens")
            await service.health.stop()
            await _until(browser, "return window.candlekeeper.connected", lambda c: c is False,
                         20, "the page to notice the server is gone")
            assert await service.health.start() == port
            await _until(browser, "return window.candlekeeper.opens", lambda n: n > opens, 30,
                         "the page to reconnect")
            last = await _js(browser, "return window.candlekeeper.lastClosed")
            await _until(browser, "return window.candlekeeper.lastClosed",
                         lambda t: t is not None and t > last, 20,
                         "a closed candle after the reconnect")
            assert await _js(browser, "return window.notReloaded") is True
            await wait_for(lambda: service.web is not None and len(service.web.clients) == 1,
                           10, "exactly the page's one event stream")


async def _shoot(driver: Any) -> None:
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    assert await asyncio.to_thread(driver.save_screenshot, str(ARTIFACT))
    print(f"screenshot: {ARTIFACT}")
    if os.environ.get("CANDLEKEEPER_UPDATE_SCREENSHOT") == "1":
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACT, README_SHOT)
        print(f"screenshot: {README_SHOT}")
