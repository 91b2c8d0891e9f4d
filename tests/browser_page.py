"""Drive segsearch's page (`segsearch serve`'s `/`) in a real headless Chromium with Selenium.

The server is the real app (:func:`segsearch.serve.app.create_app`) run by uvicorn in a background thread on a
free loopback port; the browser is Debian's ``chromium`` with its ``chromedriver``. Used by
tests/test_serve_page.py and docs/make_serve_screenshot.py.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from pathlib import Path

WAIT = 20.0  # seconds: only a bound for a hung page or server; no timing is asserted

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)


def _which(names, extra=()) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in extra if Path(p).is_file()), None)


def browser_missing() -> str | None:
    """Why the page cannot be driven here (a missing package or program), or None."""
    for module, package in (("selenium", "selenium"), ("uvicorn", "uvicorn"), ("fastapi", "fastapi")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install {package}, or pip install -e '.[dev]')"
    if _which(BROWSERS, ("/usr/bin/chromium",)) is None:
        return "chromium is not installed (apt-get install chromium chromium-driver)"
    if _which(DRIVERS, ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")) is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


@contextlib.contextmanager
def serving(app):
    """Run the ASGI ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()


def make_driver(width: int = 1280, height: int = 900):
    """A headless Chromium of ``width`` x ``height`` (its console log kept, for :func:`console_errors`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = _which(BROWSERS, ("/usr/bin/chromium",))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.add_argument(f"--window-size={width},{height}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_which(DRIVERS, ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")))
    driver = webdriver.Chrome(options=opts, service=service)
    return driver


def console_errors(driver) -> list[str]:
    """The browser console's errors since the last call (uncaught exceptions, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(driver, condition, what: str, timeout: float = WAIT):
    """Wait until ``condition(driver)`` is truthy; returns it (a TimeoutException naming ``what`` otherwise)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, f"waiting for {what}")


def open_page(driver, url: str, classes: int) -> None:
    """Load the page and wait for its palette (``classes`` entries)."""
    driver.get(url + "/")
    wait_for(driver, lambda d: len(d.find_elements("css selector", "#class-list li")) == classes, "the palette")


def draw(driver, points) -> None:
    """Drag the mouse over the canvas through ``points`` (fractions of its width and height: 0,0 top left)."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("id", "sketch")
    rect = canvas.rect
    px = [(round((x - 0.5) * rect["width"]), round((y - 0.5) * rect["height"])) for x, y in points]
    chain = ActionChains(driver, duration=10).move_to_element_with_offset(canvas, *px[0]).click_and_hold()
    for x, y in px[1:]:
        chain = chain.move_to_element_with_offset(canvas, x, y)
    chain.release().perform()


def result_ids(driver) -> list[str]:
    return [li.get_attribute("data-id") for li in driver.find_elements("css selector", "#results li")]


def select_class(driver, name: str) -> None:
    """Click the class ``name`` in the palette."""
    for li in driver.find_elements("css selector", "#class-list li"):
        if li.find_element("css selector", ".name").text == name:
            li.click()
            return
    raise AssertionError(f"no class {name!r} in the palette")
