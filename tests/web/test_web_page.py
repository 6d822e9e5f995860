"""The live page in a real headless Chromium (Debian's chromium and chromedriver, driven by Selenium), over the
demo's emulated wearables: devices with their modalities, a signal plot that updates, a device that drops shown as
reconnecting, the refused impostor listed, and the token required off loopback."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("aiohttp", reason="the web listener needs aiohttp (pip install 'biomoe-edge[web]')")
pytest.importorskip("bumble", reason="the demo's wearables run on Bumble")
pytest.importorskip("selenium", reason="the browser tests drive Chromium with Selenium (the test extra)")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("Chromium and chromedriver not installed (Debian: apt-get install chromium chromium-driver; "
                ".ci/run installs them)", allow_module_level=True)

from gateway_helpers import ProjectionEngine  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

from biomoe_edge.commands.demo import run_demo  # noqa: E402
from biomoe_edge.runtime.gateway_config import WebConfig  # noqa: E402

#: BIOMOE_EDGE_SCREENSHOTS=docs makes the test leave its screenshots there (how docs/ got them).
SCREENSHOTS = os.environ.get("BIOMOE_EDGE_SCREENSHOTS") and os.path.abspath(os.environ["BIOMOE_EDGE_SCREENSHOTS"])


@pytest.fixture(autouse=True)
def _quiet_virtual_controller(quiet_bumble_controller):
    yield


def chromium(tmp_path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1400,1500"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        time.sleep(0.2)


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


#: What the page shows, read in one go inside the browser (the page redraws its boxes at every update).
READ_PAGE = """
const devices = {};
for (const box of document.querySelectorAll(".device")) {
  devices[box.dataset.device] = {state: box.querySelector(".state").textContent,
    modalities: [...box.querySelectorAll("tr.stream")].map((row) => row.dataset.modality).sort()};
}
const plots = {};
for (const plot of document.querySelectorAll(".plot")) {
  plots[plot.dataset.stream] = {updated: Number(plot.dataset.updated), points: Number(plot.dataset.points),
    canvas: plot.querySelector("canvas") !== null};
}
return {devices, plots, refused: document.querySelector("#refused tbody").textContent,
        health: document.getElementById("health").textContent};
"""


def browse(driver, base: str, token: str, shots: list[pathlib.Path]) -> dict:
    """What the test saw in the page, step by step (runs in a thread while the demo runs on the loop)."""
    seen = {}
    # Without the token: nothing, and no signal by the event stream either.
    seen["page_without_token"] = status_of(base)
    seen["events_without_token"] = status_of(base + "events")
    driver.get(base + f"?token={token}")
    page = until(lambda: (lambda p: len(p["devices"]) == 2 and all(d["modalities"] for d in p["devices"].values())
                          and p)(driver.execute_script(READ_PAGE)), 40, "the demo's devices on the page")
    seen["address_bar"] = driver.current_url
    seen["devices"] = {name: d["modalities"] for name, d in page["devices"].items()}
    stream = "biomoe-demo-1/bvp"
    first = until(lambda: driver.execute_script(READ_PAGE)["plots"].get(stream), 20, "the bvp plot")
    later = until(lambda: (lambda p: p["updated"] > first["updated"] and p)(
        driver.execute_script(READ_PAGE)["plots"][stream]), 10, "a second update of the bvp plot")
    seen["plot_updates"] = (first["updated"], later["updated"])
    seen["plot_points"], seen["plot_canvas"] = later["points"], later["canvas"]
    shots.append(pathlib.Path("web-page.png"))
    driver.save_screenshot(str(shots[-1]))
    page = until(lambda: (lambda p: any(d["state"] == "reconnecting" for d in p["devices"].values()) and p)(
        driver.execute_script(READ_PAGE)), 20, "a device shown as reconnecting")
    seen["reconnecting"] = [name for name, d in page["devices"].items() if d["state"] == "reconnecting"]
    shots.append(pathlib.Path("web-page-reconnecting.png"))
    driver.save_screenshot(str(shots[-1]))
    seen["refused"] = until(lambda: driver.execute_script(READ_PAGE)["refused"], 20, "the refused impostor")
    return seen


async def test_the_live_page_in_chromium(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOMOE_WEB_TOKEN", "page-token")
    monkeypatch.chdir(tmp_path)
    result: dict = {}
    engine = ProjectionEngine(max_batch=8)
    demo = asyncio.ensure_future(run_demo(
        duration_s=30.0, devices=2, loss=0.0, engine=engine, modalities=("bvp", "eda"), representations=("waveform",),
        window_s=3.0, hop_s=1.0, seed=1, quiet=True, result=result, impostor=True,
        # both wearables leave at 8 s of device time for 4 s: long enough for the page to show it
        wearable_options={"disconnect_at": (8.0,), "reconnect_delay_s": 4.0},
        web=WebConfig(host="0.0.0.0", port=0)))
    driver = None
    try:
        deadline = time.monotonic() + 60
        while "web_url" not in result:
            assert not demo.done(), demo.exception() if demo.done() else ""
            assert time.monotonic() < deadline, "the demo's web listener did not start"
            await asyncio.sleep(0.1)
        port = int(result["web_url"].rstrip("/").rsplit(":", 1)[1])
        base = f"http://127.0.0.1:{port}/"
        driver = await asyncio.to_thread(chromium, tmp_path)
        shots: list[pathlib.Path] = []
        seen = await asyncio.to_thread(browse, driver, base, "page-token", shots)
    finally:
        if driver is not None:
            await asyncio.to_thread(driver.quit)
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)
    assert seen["page_without_token"] == 401 and seen["events_without_token"] == 401
    assert "token" not in seen["address_bar"]  # kept in a cookie, dropped from the address
    assert seen["devices"] == {"biomoe-demo-1": ["bvp", "eda"], "biomoe-demo-2": ["bvp", "eda"]}
    assert seen["plot_updates"][1] > seen["plot_updates"][0]
    assert seen["plot_points"] > 10 and seen["plot_canvas"]
    assert set(seen["reconnecting"]) <= {"biomoe-demo-1", "biomoe-demo-2"} and seen["reconnecting"]
    assert "F0:00:00:00:00:03" in seen["refused"] or "description changed" in seen["refused"]
    if SCREENSHOTS:
        for shot in shots:
            shutil.copy(tmp_path / shot, pathlib.Path(SCREENSHOTS) / shot)
