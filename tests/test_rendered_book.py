"""The rendered book, read in a real browser with the network cut off.

Serves ``_build/html`` (build it first: ``jupyter-book build .``) from a loopback HTTP server and
opens every page in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium, no browser download), with every request that is not to the loopback server blocked.
On every page: no JavaScript error, no failed or outside request, every image loaded, nothing
wider than the content column outside a box that scrolls (1280 px window), the maths typeset by
the MathJax the book carries. On every slider panel (:class:`dislib.viz.SliderPanel`): moving
each slider to its other end changes the picture and the readout beside that slider. A full-page
screenshot of each page goes to ``_build/screenshots/<page>.png``.

Without Chromium, chromedriver, Selenium or a built book this test skips with the command that
fixes it, except where ``CI`` is set: there it fails. Run it alone with
``pytest -p no:randomly -m rendered_book tests/test_rendered_book.py``; set ``DISLIB_BOOK_HTML``
to check another built book (a copy) instead of ``_build/html``.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.rendered_book

ROOT = Path(__file__).resolve().parents[1]
# DISLIB_BOOK_HTML: another built book (a copy) to check instead of _build/html.
HTML = Path(os.environ.get("DISLIB_BOOK_HTML") or ROOT / "_build" / "html").resolve()
SHOTS = HTML.parent / "screenshots"  # _build/screenshots for _build/html
WIDTH, HEIGHT = 1280, 900
MAX_SHOT_HEIGHT = 30_000  # px; taller pages are cut in the screenshot (the checks see all of them)
INSTALL_BROWSER = "apt-get install -y chromium chromium-driver"
INSTALL_SELENIUM = 'pip install -e ".[browser]"'
BUILD = "jupyter-book build ."
# Sphinx's own pages and folders: not pages of the book.
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "_panels_static", ".doctrees"}
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}


def _unavailable(message: str) -> None:
    """Skip on a reader's machine; fail under CI (``CI`` set), where the test must never pass silently."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(message)


def _find(*candidates: str) -> str | None:
    for name in candidates:
        path = shutil.which(name) or (name if os.path.isfile(name) and os.access(name, os.X_OK) else None)
        if path:
            return path
    return None


def book_pages() -> list[str]:
    """The root page and every page under ``book/``, as paths relative to ``_build/html``."""
    pages = [p.relative_to(HTML).as_posix() for p in sorted((HTML / "book").rglob("*.html"))
             if not SKIP_DIRS.intersection(p.relative_to(HTML).parts) and p.name not in SKIP_PAGES]
    return ["index.html", *pages]


# ---------------------------------------------------------------------------------------------
# Fixtures: the built book, a loopback server, headless Chromium with the network blocked.


@pytest.fixture(scope="module")
def built_book() -> Path:
    if not (HTML / "index.html").is_file() or not (HTML / "book").is_dir():
        _unavailable(f"no built book in {HTML}: build it first with `{BUILD}`")
    return HTML


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def server(built_book: Path):
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free port
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser(built_book: Path):
    chromium = _find("/usr/bin/chromium", "chromium", "chromium-browser")
    chromedriver = _find("/usr/bin/chromedriver", "chromedriver")
    if not chromium or not chromedriver:
        _unavailable(f"headless Chromium and chromedriver are missing: install them with `{INSTALL_BROWSER}`")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable(f"Selenium is missing: install it with `{INSTALL_SELENIUM}`")

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WIDTH},{HEIGHT}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
        # No network but the loopback server: every other host name resolves to nothing, and every
        # request that is not to a loopback address goes to a proxy that is not there.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(60)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
        driver.execute_cdp_cmd("Network.enable", {})
        yield driver
    finally:
        driver.quit()


# ---------------------------------------------------------------------------------------------
# JavaScript run in the page.

# Wait for the page's images and for MathJax (where the page loads it) to finish typesetting.
WAIT_READY = r"""
const done = arguments[arguments.length - 1];
(async () => {
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline && !Array.from(document.images).every(i => i.complete))
    await new Promise(r => setTimeout(r, 100));
  const loadsMathJax = Array.from(document.scripts).some(s => /mathjax/i.test(s.src));
  let mathjax = "absent";
  if (loadsMathJax) {
    // The script is deferred: by the load event it has run, if it loaded at all.
    const started = Date.now() + 3000;
    while (Date.now() < started && !(window.MathJax && MathJax.startup && MathJax.startup.promise))
      await new Promise(r => setTimeout(r, 100));
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      const timeout = new Promise(r => setTimeout(r, Math.max(0, deadline - Date.now())));
      await Promise.race([MathJax.startup.promise, timeout]);
      mathjax = "ready";
    } else mathjax = "never started (its script did not load or run)";
  }
  await document.fonts.ready;
  done(mathjax);
})().catch(e => done("error: " + e));
"""

# Every check of a page that reads the DOM; returns a list of failures (strings).
PAGE_CHECKS = r"""
const failures = [];
// At most `cap` messages of one kind per page, then a count.
const capped = (messages, cap = 5) => messages.length <= cap ? messages
  : [...messages.slice(0, cap), `... and ${messages.length - cap} more like the above`];
const describe = (el) => {
  let s = el.tagName.toLowerCase();
  if (el.id) s += "#" + el.id;
  if (typeof el.className === "string" && el.className.trim())
    s += "." + el.className.trim().split(/\s+/).slice(0, 3).join(".");
  const cell = el.closest("[id]");
  if (cell && cell !== el) s += " in #" + cell.id;
  const text = (el.textContent || el.getAttribute("alt") || "").replace(/\s+/g, " ").trim().slice(0, 60);
  return text ? `${s} ("${text}")` : s;
};

// Images: every <img> loaded.
for (const img of document.images) {
  if (!img.complete || img.naturalWidth === 0) {
    const src = img.getAttribute("src") || "";
    failures.push(`image not loaded: ${describe(img)} src=${src.slice(0, 80)}`);
  }
}

// Width: nothing wider than the content column except inside a box that scrolls.
const column = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
const col = column.getBoundingClientRect();
if (document.documentElement.scrollWidth > window.innerWidth + 1)
  failures.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} px wide `
    + `in a ${window.innerWidth} px window`);
const scrolls = (el) => {
  for (let a = el.parentElement; a && a !== column.parentElement; a = a.parentElement) {
    const o = getComputedStyle(a).overflowX;
    if (o === "auto" || o === "scroll") return true;
  }
  return false;
};
const reported = [], wide = [];
for (const el of column.querySelectorAll("*")) {
  if (reported.some(r => r.contains(el))) continue;
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  const style = getComputedStyle(el);
  if (style.visibility === "hidden" || style.position === "fixed") continue;
  if (r.right > col.right + 1 || r.left < col.left - 1) {
    if (scrolls(el)) continue;
    reported.push(el);
    wide.push(`wider than the content column (${Math.round(col.width)} px, from x=${Math.round(col.left)}) `
      + `and not in a box that scrolls: ${describe(el)} spans x=${Math.round(r.left)}..${Math.round(r.right)}`);
  }
}
failures.push(...capped(wide));

// Maths: typeset, no TeX error, no raw TeX left in the text.
const maths = column.querySelectorAll(".math");
const typeset = column.querySelectorAll("mjx-container");
const untypeset = Array.from(maths).filter(m => !m.querySelector("mjx-container") && !m.closest("mjx-container"));
if (untypeset.length)
  failures.push(`${untypeset.length} of ${maths.length} maths not typeset, the first: ${describe(untypeset[0])}`);
failures.push(...capped(Array.from(column.querySelectorAll("mjx-merror, [data-mjx-error]"),
  e => `MathJax error: ${(e.getAttribute("data-mjx-error") || e.textContent).slice(0, 120)}`)));
// \( \) \[ \] $$, $...$ (no space inside the dollars), or a TeX command.
const raw = new RegExp([String.raw`\\[()\[\]]`, String.raw`\$\$`, String.raw`\$[^\s$][^$\n]{0,200}?[^\s$\\]\$`,
  String.raw`\$[^\s$]\$`, String.raw`\\(frac|mathbb|mathcal|mathbf|operatorname|begin|end)\b`].join("|"));
const skip = "pre, code, script, style, textarea, kbd, samp, mjx-container, .highlight, .MathJax";
const rawTex = [];
const walker = document.createTreeWalker(column, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const parent = node.parentElement;
  if (!parent || parent.closest(skip)) continue;
  const m = raw.exec(node.textContent);
  if (m) {
    const i = m.index, t = node.textContent;
    const excerpt = t.slice(Math.max(0, i - 30), i + 50).replace(/\s+/g, " ");
    rawTex.push(`raw TeX left as text in ${describe(parent)}: "${excerpt}"`);
  }
}
failures.push(...capped(rawTex, 3));
return {failures: failures, maths: maths.length, typeset: typeset.length, hasMathJax: !!window.MathJax};
"""

# The slider panels of the page (dislib.viz.SliderPanel.html): id, title, slider labels; and the
# number of range inputs outside them (a panel this test would not recognise, so not check).
FIND_PANELS = r"""
const roots = Array.from(document.querySelectorAll('div[id^="dislib-slider-"]'));
const panels = roots.map((root) => {
  const first = root.firstElementChild;
  const head = first && first.tagName === "DIV" ? first.textContent : "";  // the panel's title, if any
  const inputs = Array.from(root.querySelectorAll('input[type="range"]'));
  return {id: root.id, title: head.trim(), sliders: inputs.map(i => i.getAttribute("aria-label") || "")};
});
const stray = Array.from(document.querySelectorAll('input[type="range"]'))
  .filter(i => !roots.some(r => r.contains(i)));
return {panels: panels, stray: stray.length};
"""

# Move slider k of panel id to its other end; report the picture and the readout before and after.
MOVE_SLIDER = r"""
const [id, k, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
(async () => {
  const root = document.getElementById(id);
  const img = root.querySelector("img");
  const input = root.querySelectorAll('input[type="range"]')[k];
  let readout = input.nextElementSibling;
  if (!readout || !readout.classList.contains("dislib-value"))
    readout = root.getElementsByClassName("dislib-value")[k];
  const pixels = async () => {
    try { await img.decode(); } catch (e) { return null; }
    if (!img.naturalWidth) return null;
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    return canvas.toDataURL("image/png");
  };
  const before = {src: img.currentSrc || img.src, readout: readout ? readout.textContent : null,
                  value: input.value, pixels: await pixels()};
  const target = +input.value === +input.max ? input.min : input.max;
  input.value = target;
  input.dispatchEvent(new Event("input", {bubbles: true}));
  input.dispatchEvent(new Event("change", {bubbles: true}));
  await new Promise(r => setTimeout(r, 50));
  const after = {src: img.currentSrc || img.src, readout: readout ? readout.textContent : null,
                 value: input.value, pixels: await pixels()};
  done({before: before, after: after, target: target, min: input.min, max: input.max});
})().catch(e => done({error: String(e)}));
"""


# ---------------------------------------------------------------------------------------------
# Helpers.


def _drain_logs(driver) -> tuple[list[dict], list[dict]]:
    return driver.get_log("browser"), driver.get_log("performance")


WIDGETS_HINT = (" (the page's notebook holds ipywidgets state, e.g. a tqdm progress bar, so MyST-NB loads the"
                " widget manager and require.js from CDNs: clear those outputs and the notebook's metadata.widgets)")


def _network_failures(performance: list[dict], origin: str) -> list[str]:
    """Requests that left the loopback server, failed, or got an HTTP error, from Chromium's network log."""
    sent: dict[str, str] = {}
    failures = []
    events = [json.loads(entry["message"])["message"] for entry in performance]
    for event in events:
        if event.get("method") == "Network.requestWillBeSent":
            params = event["params"]
            url = params["request"]["url"]
            if url == f"{origin}/favicon.ico":  # Chromium's own guess; a page's <link rel=icon> is checked
                continue
            sent[params["requestId"]] = url
            if not url.startswith((origin + "/", "data:", "blob:", "about:")):
                # Reported once: its failure and its console message below would say the same again.
                failures.append(f"request outside the loopback server, blocked (the page needs the network): "
                                f"{url[:160]}" + (WIDGETS_HINT if "@jupyter-widgets/" in url else ""))
    for event in events:
        params = event.get("params", {})
        url = sent.get(params.get("requestId"))
        if url is None or not url.startswith(origin + "/"):  # a late event of the previous page, or blocked
            continue
        if event.get("method") == "Network.loadingFailed" and not params.get("canceled"):
            failures.append(f"request failed ({params.get('errorText')}): {url[:160]}")
        elif event.get("method") == "Network.responseReceived" and params["response"].get("status", 200) >= 400:
            failures.append(f"HTTP {params['response']['status']}: {url[:160]}")
    return list(dict.fromkeys(failures))


def _console_errors(entries: list[dict], origin: str) -> list[str]:
    """SEVERE console entries, less "Failed to load resource" for blocked outside requests (reported once, above)."""
    def reported_elsewhere(message: str) -> bool:
        url = message.split(" ", 1)[0]
        return url == f"{origin}/favicon.ico" or (
            "Failed to load resource" in message and "://" in url and not url.startswith(origin + "/"))
    return list(dict.fromkeys(f"JavaScript console error: {e['message'][:300]}" for e in entries
                              if e.get("level") == "SEVERE" and not reported_elsewhere(e["message"])))


def _screenshot(driver, page: str) -> None:
    path = SHOTS / Path(page).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script(
        "return Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0)")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": WIDTH, "height": min(max(height, HEIGHT), MAX_SHOT_HEIGHT), "scale": 1},
    })
    path.write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})


def _check_panel(driver, page: str, number: int, panel: dict) -> tuple[list[str], int]:
    name = f"{page}: slider panel {number} ({panel['title']!r}, #{panel['id']})" if panel["title"] else \
        f"{page}: slider panel {number} (#{panel['id']})"
    failures = []
    if len(panel["sliders"]) == 0:
        return [f"{name}: no slider"], 0
    for k, label in enumerate(panel["sliders"]):
        moved = driver.execute_async_script(MOVE_SLIDER, panel["id"], k)
        what = f"{name}, slider {k + 1} ({label!r})"
        if "error" in moved:
            failures.append(f"{what}: moving it raised {moved['error']}")
            continue
        before, after = moved["before"], moved["after"]
        where = f"moved from {before['value']} to {after['value']} (range {moved['min']}..{moved['max']})"
        if before["pixels"] is None:
            failures.append(f"{what}: the picture does not show before the move")
        if after["pixels"] is None:
            failures.append(f"{what}: {where}: the new frame does not load (src={after['src'][:60]!r})")
        elif before["src"] == after["src"] and before["pixels"] == after["pixels"]:
            failures.append(f"{what}: {where}: the picture does not change")
        if before["readout"] is None:
            failures.append(f"{what}: no readout beside the slider")
        elif before["readout"] == after["readout"]:
            failures.append(f"{what}: {where}: the readout stays at {before['readout']!r}")
    return failures, len(panel["sliders"])


# ---------------------------------------------------------------------------------------------
# The test.


def test_every_page_renders_offline(built_book, server, browser, capsys):
    """Open every page of the built book with the network blocked; check it; try every slider."""
    driver = browser
    pages = book_pages()
    shutil.rmtree(SHOTS, ignore_errors=True)
    failures: list[str] = []
    n_panels = n_sliders = n_maths = 0
    start = time.monotonic()
    for page in pages:
        _drain_logs(driver)
        driver.get(f"{server}/{page}")
        if page == "index.html":
            # The root page only redirects to the introduction.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not driver.current_url.endswith("/book/intro.html"):
                time.sleep(0.1)
            if not driver.current_url.endswith("/book/intro.html"):
                failures.append(f"{page}: does not lead to book/intro.html (at {driver.current_url})")
        state = driver.execute_async_script(WAIT_READY)
        page_failures = []
        if state not in ("absent", "ready"):
            page_failures.append(f"MathJax {state}")
        _screenshot(driver, page)
        if page != "index.html":
            checks = driver.execute_script(PAGE_CHECKS)
            page_failures += checks["failures"]
            if checks["maths"] and not checks["hasMathJax"]:
                page_failures.append(f"{checks['maths']} maths on the page but MathJax is not loaded")
            n_maths += checks["typeset"]
            found = driver.execute_script(FIND_PANELS)
            if found["stray"]:
                page_failures.append(f"{found['stray']} range input(s) outside any dislib slider panel "
                                     "(div#dislib-slider-...): not checked")
            for number, panel in enumerate(found["panels"], 1):
                panel_failures, sliders = _check_panel(driver, page, number, panel)
                failures += panel_failures
                n_panels += 1
                n_sliders += sliders
        console, performance = _drain_logs(driver)
        page_failures += _console_errors(console, server) + _network_failures(performance, server)
        failures += [f"{page}: {f}" for f in page_failures]

    summary = (f"rendered book: {len(pages)} pages, {n_panels} slider panels, {n_sliders} sliders checked, "
               f"{n_maths} typeset maths, offline, in {time.monotonic() - start:.0f} s; "
               f"screenshots in {os.path.relpath(SHOTS, ROOT)}/")
    with capsys.disabled():  # the counts show in pytest's output with or without -s
        print(f"\n{summary}")
    if not pages[1:]:
        pytest.fail(f"no page under {HTML / 'book'}: rebuild the book with `{BUILD}`", pytrace=False)
    if failures:
        pytest.fail(f"{len(failures)} failure(s) in the rendered book ({summary}):\n  " + "\n  ".join(failures),
                    pytrace=False)
