"""End to end in a real browser: the playground of `make serve` (upload, ladder, live preview) and the ?picture
markup pasted into a page on another origin, in headless Chromium (Debian's, driven by Playwright; no download).

Skipped without a browser, unless REQUIRE_BROWSER=1 (.ci/run sets it): then a missing browser fails."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "out" / "playwright"
HOW = ("needs Chromium and Playwright: apt-get install chromium (Debian's, at /usr/bin/chromium) and "
       ".venv/bin/pip install -r requirements/test.txt (never `playwright install`); REQUIRE_BROWSER=1 fails instead")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Uploaded by the tests: a real photo 1201 px wide (every ladder width its own variant) and 100 high, so each of its
# ladders costs an eighth of a 1201x800 photo's (the dev server renders them on this machine's same two cores).
BANNER = ROOT / "tests" / "fixtures" / "banner.jpg"
PHOTO = "uploads/pasted/banner.jpg"
VIEWPORTS = [(375, 1), (375, 2), (768, 1), (768, 2), (1440, 1), (1440, 2)]
pytestmark = pytest.mark.early  # seconds each, in the browser and the dev server: started first (conftest)


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("REQUIRE_BROWSER", "") not in ("", "0"):
            pytest.fail(f"{missing}; REQUIRE_BROWSER is set. {HOW}")
        pytest.skip(f"{missing}: the browser tests {HOW}")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def devserver(browser: object) -> Iterator[tuple[str, Path]]:
    """`make serve` as a newcomer starts it: its own embedded S3 (a free port), samples/ loaded."""
    port, s3_port = _free_port(), _free_port()
    log = ARTIFACTS / "devserver.log"
    from imageorigin.config import Settings

    env = {k: v for k, v in os.environ.items() if k not in Settings.env_names() and not k.startswith("AWS_")}
    env["PYTHONUNBUFFERED"] = "1"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "devserver.serve", "--port", str(port),
                                    "--s3-port", str(s3_port)], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/_local/config", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the dev server did not start:\n{log.read_text()}")
                time.sleep(0.3)
        yield base, log
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_upload_shows_its_ladder_and_the_preview_follows_the_parameters(browser, devserver, tmp_path) -> None:
    base, log = devserver
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    assert page.locator("#gallery li").count() >= 7  # samples/
    # the format menus are the registry's: every format the service writes, fm=auto's candidates first
    from imageorigin.formats import ANIMATED_MENU, MENU, Format

    assert page.locator("select[name=fm] option").evaluate_all("os => os.map(o => o.value)") == ["", "auto", *MENU]
    assert set(MENU) == {f.value for f in Format if f is not Format.ORIGINAL} and MENU[:2] == ("avif", "webp")
    assert page.locator("#animation select[name=format] option").evaluate_all(
        "os => os.map(o => o.value)") == [*ANIMATED_MENU, "auto"] == ["gif", "webp", "auto"]
    # upload: the file input stands in for a drop; the page POSTs it (presigned) straight to the local bucket
    upload = tmp_path / "cat.jpg"
    upload.write_bytes(BANNER.read_bytes())
    page.set_input_files("#file", str(upload))
    page.wait_for_function("document.querySelector('#upload-status').textContent.includes('its ladder is below')",
                           timeout=90_000)
    assert page.locator("#ladder-key").text_content() == "uploads/cat.jpg"
    widths = {int(w) for w in page.locator("#ladder tbody tr").evaluate_all("rows => rows.map(r => r.dataset.width)")}
    assert page.locator("#ladder tbody tr").count() == 15 and max(widths) <= 1200
    # the bucket's event reached the pre-warm handler, as on AWS
    _await_prewarm(log, "uploads/cat.jpg")
    page.screenshot(path=str(ARTIFACTS / "playground-uploaded.jpg"), full_page=True, quality=80)

    # a parameter changed: the preview follows, decoded at its new size, with what the service said about it
    page.wait_for_function("document.querySelector('#preview').naturalWidth > 0", timeout=60_000)
    page.fill("input[name=w]", "200")
    page.select_option("select[name=fm]", "webp")
    page.wait_for_function("document.querySelector('#preview-info').dataset.width === '200' && "
                           "document.querySelector('#preview-info').textContent.includes('image/webp')",
                           timeout=60_000)
    assert page.evaluate("document.querySelector('#preview').naturalWidth") == 200
    info = page.locator("#preview-info").text_content()
    assert "cache miss" in info and "render" in info and "bytes" in info
    assert page.locator("#built-url").input_value() == f"{base}/uploads/cat.jpg?w=200&fm=webp"
    # the same again is a hit
    page.fill("input[name=w]", "201")
    page.wait_for_function("document.querySelector('#preview-info').dataset.width === '201'", timeout=60_000)
    page.fill("input[name=w]", "200")
    page.wait_for_function("document.querySelector('#preview-info').dataset.width === '200' && "
                           "document.querySelector('#preview-info').dataset.cache === 'hit'", timeout=60_000)
    # the <picture> frame says which candidate the browser took
    page.wait_for_function("document.querySelector('#picture-choice').textContent.startsWith('http')",
                           timeout=60_000)
    assert "uploads/cat.jpg?w=" in page.locator("#picture-choice").text_content()
    page.screenshot(path=str(ARTIFACTS / "playground-preview.jpg"), full_page=True, quality=80)
    page.close()


def _await_prewarm(log: Path, key: str) -> None:
    deadline = time.monotonic() + 30
    while f"S3 ObjectCreated:Put {key} -> " not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"S3 ObjectCreated:Put {key} -> {{'handled': 1}}" in log.read_text()


@pytest.fixture(scope="module")
def elsewhere(devserver: tuple[str, Path]) -> Iterator[str]:
    """A page on another origin (another port, and localhost rather than 127.0.0.1) with the markup pasted in."""
    base, log = devserver
    upload = urllib.request.urlopen(f"{base}/_local/upload-url?key={PHOTO}", timeout=10).read().decode().strip()
    put = urllib.request.Request(upload, data=BANNER.read_bytes(), method="PUT", headers={"Content-Type": "image/jpeg"})
    urllib.request.urlopen(put, timeout=30).read()  # (urllib's default type, a form, makes moto wait for fields)
    _await_prewarm(log, PHOTO)  # its ladder made by the bucket's event, as on AWS (not twice, by ?picture too)
    markup = urllib.request.urlopen(f"{base}/{PHOTO}?picture&priority=high", timeout=120).read().decode()
    page = ("<!doctype html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'><title>pasted</title></head>"
            f"<body style='margin:0'><article><h1>A street</h1>{markup}<p>Text after it.</p></article></body></html>")

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    yield f"http://localhost:{server.server_port}/"
    server.shutdown()
    server.server_close()


def expected_width(viewport: int, scale: int, widths: list[int]) -> int:
    """What Chromium takes for sizes="(max-width: 1200px) 100vw, 1200px": the smallest candidate whose density
    covers the device's, unless the one below it is nearer by geometric mean; else the largest."""
    slot = min(viewport, 1200)
    densities = [w / slot for w in widths]
    for i, density in enumerate(densities):
        if density >= scale:
            if i and scale < (densities[i - 1] * density) ** 0.5:
                return widths[i - 1]
            return widths[i]
    return widths[-1]


def test_the_animation_maker_makes_one_and_links_its_download(browser, devserver) -> None:
    base, _ = devserver
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    page.fill("#animation textarea", "photos/progressive.jpg\nphotos/lake.webp\ngraphics/alpha.png")
    page.fill("#animation input[name=w]", "120")
    page.fill("#animation input[name=h]", "90")
    page.click("#animation button")
    page.wait_for_function("document.querySelector('#animation-status').dataset.frames === '3'", timeout=90_000)
    page.wait_for_function("document.querySelector('#animation-result').naturalWidth > 0", timeout=30_000)
    assert page.evaluate("document.querySelector('#animation-result').naturalWidth") == 120
    download = page.locator("#animation-download").get_attribute("href")
    got = page.request.get(download)
    assert got.status == 200 and "attachment" in got.headers["content-disposition"]
    image = Image.open(io.BytesIO(got.body()))
    assert (image.format, image.n_frames, image.size) == ("GIF", 3, (120, 90))
    page.screenshot(path=str(ARTIFACTS / "playground-animation.jpg"), full_page=True, quality=80)
    page.close()


def test_pasted_picture_loads_the_right_candidate_without_overflow(browser, devserver, elsewhere) -> None:
    base, _ = devserver
    widths = sorted({v["width"] for v in json.loads(urllib.request.urlopen(
        f"{base}/{PHOTO}?picture=json", timeout=120).read())["variants"] if v["width"] > 64})
    measured = []
    for viewport, scale in VIEWPORTS:
        context = browser.new_context(viewport={"width": viewport, "height": 800}, device_scale_factor=scale)
        page = context.new_page()
        page.goto(elsewhere)
        page.wait_for_function("(() => { const i = document.querySelector('img');"
                               " return i.complete && i.naturalWidth > 0; })()", timeout=60_000)
        state = page.evaluate("""() => { const i = document.querySelector('img'); const d = document.documentElement;
            return {src: i.currentSrc, natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
                    scroll: d.scrollWidth, client: d.clientWidth}; }""")
        page.screenshot(path=str(ARTIFACTS / f"picture-{viewport}x{scale}.jpg"), quality=80)
        context.close()
        chosen = int(state["src"].split("w=")[1].split("&")[0])
        measured.append({"viewport": viewport, "scale": scale, **state, "chosen": chosen})
        assert state["src"].startswith(base + "/"), state  # absolute: it loads from the service, not the page's host
        assert "fm=avif" in state["src"], state  # Chromium takes the first <source>
        assert state["natural"] > 0, state  # loaded (naturalWidth is density-corrected for srcset candidates)
        assert state["scroll"] <= state["client"], state  # no horizontal scroll
        assert state["shown"] <= viewport, state
    (ARTIFACTS / "picture-candidates.json").write_text(json.dumps(measured, indent=2))
    got = {(m["viewport"], m["scale"]): m["chosen"] for m in measured}
    assert got == {(v, s): expected_width(v, s, widths) for v, s in VIEWPORTS}
    assert got[(375, 1)] == 540 and got[(375, 2)] == got[(768, 1)] == 768 and got[(1440, 2)] == 1200
