"""The page at `/` of `segsearch serve` in a real headless Chromium (Debian's chromium and chromedriver) driven by
Selenium, against the real app on a tiny index with the fake network: draw a stroke and see results, click one to
requery, upload a photo, the keys, the token form, a phone's screen; the refinements of issue 22 (leave a class out,
why a result is there, date / camera / folder filters, emphasise a class, more / fewer like a result), each checked
in the request the page sends and in the grid showing the server's answer to it.

Skipped when selenium, chromium or chromedriver is missing, unless SEGSEARCH_REQUIRE_BROWSER=1 (CI), which makes
that a failure.
"""

import base64
import datetime as dt
import io
import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from browser_page import (
    browser_missing,
    console_errors,
    draw,
    make_driver,
    open_page,
    result_ids,
    select_class,
    serving,
    wait_for,
)
from photo_folder import CLASSES, SIZE, FakeSegmenter, make_index_folder
from segsearch.network.palette import make_palette

REQUIRE = os.environ.get("SEGSEARCH_REQUIRE_BROWSER", "") == "1"
K = 24  # the page asks for this many results
TOKEN = "t0ken-for-the-page"

# Records what the page sends to /api/search: the JSON body, or a multipart form's part names and query.
RECORD_SEARCHES = """
window.__searches = [];
const realFetch = window.fetch;
window.fetch = function (url, options) {
  if (String(url).includes("/api/search")) {
    const body = options && options.body;
    window.__searches.push(body instanceof FormData
      ? {parts: [...body.keys()], query: body.get("query"), image: body.get("image").name}
      : {json: body});
  }
  return realFetch.apply(this, arguments);
};
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    why = browser_missing()
    if why:
        if REQUIRE:
            pytest.fail(f"SEGSEARCH_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    return make_index_folder(tmp_path_factory.mktemp("page"))


def _app(folder, **kwargs):
    from segsearch.serve.app import create_app

    return create_app(folder[0], segmenter=FakeSegmenter(), reload_seconds=0, **kwargs)


@pytest.fixture(scope="module")
def url(folder):
    with serving(_app(folder)) as base:
        yield base


@pytest.fixture(scope="module")
def driver(folder):
    d = make_driver()
    yield d
    d.quit()


@pytest.fixture
def page(driver, url):
    """The page loaded afresh, its searches recorded; checks that the browser logged no error."""
    open_page(driver, url, len(CLASSES))
    driver.execute_script(RECORD_SEARCHES)
    console_errors(driver)  # what loading logged is checked by test_page_loads
    yield driver
    assert console_errors(driver) == []


def _status(driver) -> str:
    return driver.find_element("id", "status").text


def _searches(driver) -> list[dict]:
    return driver.execute_script("return window.__searches")


def _last_query(driver) -> dict:
    s = _searches(driver)[-1]
    return json.loads(s["json"] if "json" in s else s["query"])


def _api_ids(url, body, headers=None) -> list[str]:
    import httpx

    r = httpx.post(url + "/api/search", json=body, headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    return [h["id"] for h in r.json()["results"]]


def _wait_results(driver, count: int = 1) -> None:
    wait_for(driver, lambda d: d.execute_script("return document.body.classList.contains('busy')") is False, "idle")
    wait_for(driver, lambda d: len(result_ids(d)) >= count, "results")


def _wait_search(driver, n: int) -> None:
    """Wait until the page has sent its n-th search and shown the answer."""
    wait_for(driver, lambda d: len(_searches(d)) >= n, f"search {n}")
    wait_for(driver, lambda d: not d.execute_script("return document.body.classList.contains('busy')"), "the answer")


def _sketch_labels(data_url: str) -> np.ndarray:
    """The sketch PNG the page sent, as class indices (-1 = unspecified); checks it has no blended pixels."""
    png = base64.b64decode(data_url.split(",", 1)[1])
    im = Image.open(io.BytesIO(png))
    assert im.mode == "RGBA" and im.size == (256, 256)
    rgba = np.asarray(im)
    assert set(np.unique(rgba[..., 3])) <= {0, 255}, "the sketch must not be anti-aliased"
    palette = make_palette(len(CLASSES))
    labels = np.full(rgba.shape[:2], -1)
    opaque = rgba[..., 3] == 255
    for c, colour in enumerate(palette):
        labels[opaque & (rgba[..., :3] == colour).all(-1)] = c
    assert not (opaque & (labels < 0)).any(), "every drawn pixel must be exactly a class colour"
    return labels


def test_page_loads_with_the_palette(driver, url):
    open_page(driver, url, len(CLASSES))
    names = [e.text for e in driver.find_elements("css selector", "#class-list .name")]
    assert names == CLASSES
    swatch = driver.find_element("css selector", '#class-list li[data-index="1"] .swatch')
    assert swatch.value_of_css_property("background-color") == "rgba({}, {}, {}, 1)".format(*make_palette(8)[1])
    assert "drawing: sky" in driver.find_element("id", "current-class").text  # the first class after 'others'
    assert "40 photos" in driver.find_element("id", "index-info").text
    assert "error" not in driver.find_element("id", "status").get_attribute("class")
    assert console_errors(driver) == []
    # the filter narrows the palette; Enter picks the class it names
    box = driver.find_element("id", "class-filter")
    box.send_keys("ro")
    shown = [li.text for li in driver.find_elements("css selector", "#class-list li") if li.is_displayed()]
    assert [s.split("\n")[0] for s in shown] == ["road"]
    box.send_keys("\n")
    assert "drawing: road" in driver.find_element("id", "current-class").text


def test_a_stroke_searches_and_shows_results(page, url):
    select_class(page, "sky")
    draw(page, [(0.1, 0.15), (0.5, 0.15), (0.9, 0.15)])
    _wait_search(page, 1)
    _wait_results(page, K)
    q = _last_query(page)
    assert set(q) == {"k", "sketch", "explain"} and q["k"] == K and q["explain"] is True
    labels = _sketch_labels(q["sketch"])
    rows = np.nonzero((labels == CLASSES.index("sky")).any(1))[0]
    assert set(np.unique(labels)) == {-1, CLASSES.index("sky")}
    assert 0 < rows.min() and rows.max() < 256 * 0.35  # a stroke along the top, nowhere else
    # the grid shows the server's answer to that query, in its order
    assert result_ids(page) == _api_ids(url, q)
    assert "drawn: sky" in _status(page) and "ms" in _status(page)
    first = page.find_element("css selector", "#results li")
    assert "#1" in first.text and first.get_attribute("data-id") in first.text
    assert (
        first.find_element("css selector", "a.open").get_attribute("href").endswith("/api/photo/" + result_ids(page)[0])
    )
    loaded = "return [...document.querySelectorAll('#results li:first-child img')].map(i => i.naturalWidth)"
    wait_for(page, lambda d: all(w > 0 for w in d.execute_script(loaded)), "the thumbnail and label map")
    thumb_w, labels_w = page.execute_script(loaded)
    assert labels_w == SIZE  # the label map is the index's n x n, scaled up pixelated
    overlay = first.find_element("css selector", "img.labels")
    assert float(overlay.value_of_css_property("opacity")) == 0
    first.find_element("css selector", "button.toggle-labels").click()  # tap-toggle (phones); hover on a laptop
    wait_for(page, lambda d: abs(float(overlay.value_of_css_property("opacity")) - 0.55) < 0.01, "the label map")


def test_hover_shows_the_label_map(page):
    from selenium.webdriver.common.action_chains import ActionChains

    draw(page, [(0.2, 0.8), (0.8, 0.8)])
    _wait_search(page, 1)
    _wait_results(page, K)
    second = page.find_elements("css selector", "#results li")[1]
    overlay = second.find_element("css selector", "img.labels")
    ActionChains(page).move_to_element(second.find_element("css selector", ".pick")).perform()
    wait_for(page, lambda d: abs(float(overlay.value_of_css_property("opacity")) - 0.55) < 0.01, "the overlay")
    ActionChains(page).move_to_element(page.find_element("id", "status")).perform()
    wait_for(page, lambda d: float(overlay.value_of_css_property("opacity")) == 0, "the overlay to go")


def test_clicking_a_result_makes_it_the_query(page, url):
    draw(page, [(0.1, 0.1), (0.9, 0.1)])
    _wait_search(page, 1)
    _wait_results(page, K)
    chosen = result_ids(page)[2]
    page.find_elements("css selector", "#results .pick")[2].click()
    _wait_search(page, 2)
    q = _last_query(page)
    assert q["photo"] == chosen and "sketch" in q  # the strokes stay, drawn over the photo (the paper's loop)
    assert chosen in page.find_element("id", "query-name").text
    seen = page.find_element("id", "query-labels")
    wait_for(page, lambda d: seen.is_displayed() and d.execute_script("return arguments[0].naturalWidth", seen), "seen")
    assert seen.get_attribute("src").startswith("data:image/png;base64,")
    assert page.execute_script("return arguments[0].naturalWidth", seen) == SIZE
    assert result_ids(page) == _api_ids(url, q)
    framed = [li.get_attribute("data-id") for li in page.find_elements("css selector", "#results li.is-query")]
    assert framed == ([chosen] if chosen in result_ids(page) else [])
    # the photo is drawn under the sketch: the canvas's centre is no longer the empty canvas's white
    centre = (
        "const c = document.getElementById('sketch');"
        "return [...c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data]"
    )
    wait_for(page, lambda d: d.execute_script(centre)[:3] != [255, 255, 255], "the query photo on the canvas")
    # one undo brings back the query before it: the sketch alone
    page.find_element("tag name", "body").send_keys("\ue009z")  # Ctrl+Z
    _wait_search(page, 3)
    assert "photo" not in _last_query(page)
    assert page.find_element("id", "query-name").text == "Query: sketch only"
    assert not page.find_element("id", "seen").is_displayed()


def test_uploading_a_photo_searches_by_it(page, folder):
    photos, names = folder[1], folder[2]
    draw(page, [(0.1, 0.5), (0.9, 0.5)])
    _wait_search(page, 1)
    page.find_element("id", "photo-input").send_keys(str(photos / names[5]))
    _wait_search(page, 2)
    sent = _searches(page)[-1]
    assert sent["parts"] == ["image", "query"] and sent["image"] == names[5]
    assert "sketch" not in json.loads(sent["query"])  # a new query: the strokes are cleared (undo brings them back)
    _wait_results(page, K)
    assert result_ids(page)[0] == names[5]  # the photo itself is its own nearest
    assert names[5] in page.find_element("id", "query-name").text
    wait_for(page, lambda d: d.find_element("id", "seen").is_displayed(), "what the system sees")
    assert "segmented" in _status(page)
    # drawing over the uploaded photo sends it again with the sketch
    draw(page, [(0.3, 0.3), (0.6, 0.3)])
    _wait_search(page, 3)
    sent = _searches(page)[-1]
    assert sent["parts"] == ["image", "query"] and "sketch" in json.loads(sent["query"])


def test_bad_query_shows_the_servers_error(page):
    # a file that is not an image: the page itself refuses it, in the status line
    page.execute_script(
        "const dt = new DataTransfer(); dt.items.add(new File(['x'], 'notes.txt', {type: 'text/plain'}));"
        "document.getElementById('canvas-wrap').dispatchEvent(new DragEvent('drop', {dataTransfer: dt}));"
    )
    assert "not an image" in _status(page)
    # a file claiming to be an image that is not: the server's 4xx error line
    page.execute_script(
        "const dt = new DataTransfer(); dt.items.add(new File(['not a png'], 'fake.png', {type: 'image/png'}));"
        "document.getElementById('canvas-wrap').dispatchEvent(new DragEvent('drop', {dataTransfer: dt}));"
    )
    _wait_search(page, 1)
    wait_for(page, lambda d: "error" in d.find_element("id", "status").get_attribute("class"), "the error")
    assert _status(page).startswith("the uploaded photo is not an image")  # the server's one line, as it says it
    console_errors(page)  # the 4xx answer is logged by the browser as a failed load: expected here


def test_keys(page):
    body = page.find_element("tag name", "body")
    checked = lambda d: d.find_element("css selector", '.tool[aria-checked="true"]').get_attribute("data-tool")
    for key, tool in (("x", "box"), ("e", "eraser"), ("f", "fill"), ("r", "box"), ("b", "brush")):
        body.send_keys(key)
        assert checked(page) == tool
    size = lambda: int(page.find_element("id", "brush-size-value").text)
    before = size()
    body.send_keys("]")
    assert size() > before
    body.send_keys("[")
    assert size() == before
    # single keys do nothing while typing in a text box
    page.find_element("id", "class-filter").send_keys("e")
    assert checked(page) == "brush"
    page.find_element("id", "class-filter").send_keys("\ue003")  # Backspace: the whole palette again
    # a box of sky; a fill of road around it; Delete clears; undo brings the sketch back, redo clears again
    body.send_keys("x")
    draw(page, [(0.25, 0.25), (0.75, 0.75)])
    _wait_search(page, 1)
    box = _sketch_labels(_last_query(page)["sketch"])
    assert (box[70:180, 70:180] == 1).all() and (box[:50] == -1).all() and (box[200:] == -1).all()
    body.send_keys("f")
    select_class(page, "road")
    draw(page, [(0.05, 0.05)])
    _wait_search(page, 2)
    filled = _sketch_labels(_last_query(page)["sketch"])
    assert (filled[box == 1] == 1).all() and (filled[box == -1] == CLASSES.index("road")).all()
    body.send_keys("\ue017")  # Delete
    wait_for(page, lambda d: "Nothing to search for" in _status(d), "the cleared sketch")
    assert result_ids(page) == []
    body.send_keys("\ue009z")
    _wait_search(page, 3)
    assert (_sketch_labels(_last_query(page)["sketch"]) == filled).all()
    body.send_keys("\ue009z")
    _wait_search(page, 4)
    assert (_sketch_labels(_last_query(page)["sketch"]) == box).all()
    body.send_keys("\ue009yy")  # Ctrl held: two redos
    wait_for(page, lambda d: "Nothing to search for" in _status(d), "redo")
    # F1 and ? list the keys, from the table that binds them
    help_dialog = page.find_element("id", "help-dialog")
    body.send_keys("?")
    assert help_dialog.is_displayed()
    keys = [td.text for td in page.find_elements("css selector", "#shortcut-table tbody td:first-child")]
    assert {"Ctrl+Z", "Ctrl+Y", "Ctrl+O", "F1", "B", "E", "X", "[", "]", "Delete", "Enter"} <= set(keys)
    page.find_element("id", "help-close").send_keys("\ue00c")  # Escape
    assert not help_dialog.is_displayed()
    body.send_keys("\ue031")  # F1
    assert help_dialog.is_displayed()


def test_the_token_form(driver, folder):
    with serving(_app(folder, token=TOKEN)) as base:
        driver.get(base + "/")
        dialog = driver.find_element("id", "token-dialog")
        wait_for(driver, lambda d: dialog.is_displayed(), "the token form")
        field = driver.find_element("id", "token-input")
        field.send_keys("wrong\n")
        wait_for(driver, lambda d: "refused" in d.find_element("id", "token-error").text, "the refusal")
        field.clear()
        field.send_keys(TOKEN + "\n")
        wait_for(driver, lambda d: len(d.find_elements("css selector", "#class-list li")) == len(CLASSES), "palette")
        assert not dialog.is_displayed()
        draw(driver, [(0.1, 0.9), (0.9, 0.9)])
        _wait_results(driver, K)
        # the <img> URLs carry no header: the cookie the page set lets them load
        loaded = "return document.querySelector('#results img.thumb').naturalWidth"
        wait_for(driver, lambda d: d.execute_script(loaded) > 0, "a thumbnail behind the token")
        assert {"name": "segsearch_token", "value": TOKEN}.items() <= driver.get_cookie("segsearch_token").items()
        driver.get("about:blank")  # before the server stops
        console_errors(driver)  # the refused token's 401 is logged as a failed load: expected
    driver.delete_all_cookies()


def test_a_phone_screen(driver, url):
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    try:
        open_page(driver, url, len(CLASSES))
        driver.execute_script(RECORD_SEARCHES)
        canvas = driver.find_element("id", "sketch").rect
        assert canvas["width"] <= 390 and canvas["width"] > 300  # the canvas takes the width
        # a finger draws a stroke
        x0, y = canvas["x"] + 40, canvas["y"] + canvas["height"] * 0.2
        touch = lambda kind, x: driver.execute_cdp_cmd(
            "Input.dispatchTouchEvent", {"type": kind, "touchPoints": [] if kind == "touchEnd" else [{"x": x, "y": y}]}
        )
        touch("touchStart", x0)
        for dx in range(20, 300, 20):
            touch("touchMove", x0 + dx)
        touch("touchEnd", 0)
        _wait_search(driver, 1)
        _wait_results(driver, K)
        assert set(np.unique(_sketch_labels(_last_query(driver)["sketch"]))) == {-1, 1}
        # the refinements fit too: a class left out (a chip), the filters unfolded, a result's classes shown
        _palette_item(driver, "building").find_element("css selector", ".leave-out").click()
        _wait_search(driver, 2)
        assert _last_query(driver)["exclude"] == {"building": 0.01} and _chips(driver) == [("exclude", "building")]
        driver.find_element("css selector", "#refine summary").click()
        assert driver.find_element("id", "filters").is_displayed()
        driver.find_element("css selector", "#results li .toggle-labels").click()
        width = "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        scroll, client = driver.execute_script(width)
        assert scroll <= client, "no horizontal scroll on a phone"
        inside = (
            "return [...document.querySelectorAll(arguments[0])].every(e => e.getBoundingClientRect().right <= 390)"
        )
        assert driver.execute_script(inside, "#chips .chip, #filters input, #results .meta > *, .explain")
        # stacked: the canvas, then the palette, then the results
        top = lambda css: driver.find_element("css selector", css).rect["y"]
        assert top("#sketch") < top(".palette") < top("#results")
        assert console_errors(driver) == []
    finally:
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_caption_words(page, url):
    page.find_element("id", "words").send_keys("boats\n")
    _wait_search(page, 1)
    q = _last_query(page)
    assert q == {"k": K, "text": "boats", "explain": True}
    ids = _api_ids(url, q)
    assert ids and result_ids(page) == ids
    assert "bm25" in page.find_element("css selector", "#results li .distance").text  # text alone: ranked by bm25


# ---------------------------------------------------------------------------------------------- refinements (issue 22)
def _api(url, body) -> dict:
    import httpx

    r = httpx.post(url + "/api/search", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _server_fields(url) -> list[str]:
    import httpx

    return httpx.get(url + "/api/health", timeout=30).json()["fields"]


def _needs(url, *names) -> None:
    """Skip (with why) a test of fields the server does not take yet: the page hides their controls then."""
    missing = [n for n in names if n not in _server_fields(url)]
    if missing:
        pytest.skip(f"the server's search does not take {', '.join(missing)} yet (GET /api/health 'fields')")


def _sky_stroke(driver) -> None:
    select_class(driver, "sky")
    draw(driver, [(0.1, 0.15), (0.5, 0.15), (0.9, 0.15)])
    _wait_search(driver, 1)
    _wait_results(driver, 1)


def _palette_item(driver, name: str):
    for li in driver.find_elements("css selector", "#class-list li"):
        if li.find_element("css selector", ".name").text == name:
            return li
    raise AssertionError(f"no class {name!r} in the palette")


def _result(driver, id_: str):
    found = [li for li in driver.find_elements("css selector", "#results li") if li.get_attribute("data-id") == id_]
    return found[0] if found else None


def _chips(driver) -> list[tuple[str, str]]:
    """The refinement chips: (kind, class name or photo id)."""
    chips = driver.find_elements("css selector", "#chips .chip")
    return [(c.get_attribute("data-kind"), c.get_attribute("data-name") or c.get_attribute("data-id")) for c in chips]


def _undo(driver) -> None:
    driver.find_element("tag name", "body").send_keys("\ue009z")  # Ctrl+Z


def _shown_percent(x: float) -> str:
    """A share as the page writes it (JavaScript's Math.round)."""
    v = 100 * x
    return "<1%" if 0 < v < 1 else f"{math.floor(v + 0.5)}%"


def _opacity(element) -> float:
    return float(element.value_of_css_property("opacity"))


def test_leave_out_a_class(page, url):
    _sky_stroke(page)
    _wait_results(page, K)
    plain = result_ids(page)
    _palette_item(page, "building").find_element("css selector", ".leave-out").click()
    _wait_search(page, 2)
    q = _last_query(page)
    assert q["exclude"] == {"building": 0.01} and "sketch" in q
    ids = _api_ids(url, q)
    assert result_ids(page) == ids  # the server's answer to that body
    assert 0 < len(ids) < len(plain)  # here building covers 1% of most photos: they are left out
    assert "drawing: sky" in page.find_element("id", "current-class").text  # ⊘ does not pick the class
    assert _chips(page) == [("exclude", "building")]
    assert "left-out" in _palette_item(page, "building").get_attribute("class")
    # the chip's share, in percent
    share = page.find_element("css selector", '#chips .chip[data-name="building"] input')
    share.send_keys("\ue009a\ue000", "10", "\ue004")  # Ctrl+A (Ctrl let go), 10, Tab
    _wait_search(page, 3)
    q = _last_query(page)
    assert q["exclude"] == {"building": 0.1}
    assert result_ids(page) == _api_ids(url, q)
    # a right click on a class leaves it out too
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(page).context_click(_palette_item(page, "water")).perform()
    _wait_search(page, 4)
    assert _last_query(page)["exclude"] == {"building": 0.1, "water": 0.01}
    assert result_ids(page) == _api_ids(url, _last_query(page))
    # a chip's x removes it; each change is an undo step
    page.find_element("css selector", '#chips .chip[data-name="building"] .remove').click()
    _wait_search(page, 5)
    assert _last_query(page)["exclude"] == {"water": 0.01}
    assert _chips(page) == [("exclude", "water")]
    for n, want in ((6, {"building": 0.1, "water": 0.01}), (7, {"building": 0.1}), (8, {"building": 0.01}), (9, None)):
        _undo(page)
        _wait_search(page, n)
        q = _last_query(page)
        assert q.get("exclude") == want and "sketch" in q
        assert result_ids(page) == _api_ids(url, q)
    assert result_ids(page) == plain and _chips(page) == []


def test_why_a_result_is_there(page, url):
    from selenium.webdriver.common.action_chains import ActionChains

    _sky_stroke(page)
    _wait_results(page, K)
    q = _last_query(page)
    assert q["explain"] is True
    answer = _api(url, q)
    items = page.find_elements("css selector", "#results li")
    assert [li.get_attribute("data-id") for li in items] == [r["id"] for r in answer["results"]]
    for li, r in zip(items, answer["results"]):
        top = r["explain"][:3]
        parts = li.find_elements("css selector", ".explain .part")
        assert [p.get_attribute("data-name") for p in parts] == [t["name"] for t in top]
        shown = [p.get_attribute("textContent") for p in parts]
        assert shown == [f"{t['name']} {_shown_percent(t['part'] / r['distance'])}" for t in top]
        assert "distance from " + shown[0] in li.find_element("css selector", ".pick").get_attribute("title")
    # shown on hover, and with the ◐ toggle (a tap on a phone)
    first, second = items[0], items[1]
    why = first.find_element("css selector", ".explain")
    assert _opacity(why) == 0
    ActionChains(page).move_to_element(first.find_element("css selector", ".pick")).perform()
    wait_for(page, lambda d: _opacity(why) == 1, "the classes on hover")
    ActionChains(page).move_to_element(page.find_element("id", "status")).perform()
    second.find_element("css selector", ".toggle-labels").click()
    wait_for(page, lambda d: _opacity(second.find_element("css selector", ".explain")) == 1, "the classes on a tap")


@pytest.fixture(scope="module")
def meta_url(tmp_path_factory):
    """A server on a folder with photo metadata: photo i taken on 2020-01-01 + i days, even ones by a Canon."""
    from segsearch.library.metadata import MetadataRow, write_metadata

    index_dir, _, names, _ = make_index_folder(tmp_path_factory.mktemp("meta"))
    day = dt.datetime(2020, 1, 1, 12)
    rows = [
        MetadataRow(n, (day + dt.timedelta(days=i)).isoformat(), "exif", "Canon EOS" if i % 2 == 0 else "NIKON D7", "")
        for i, n in enumerate(names)
    ]
    write_metadata(rows, index_dir / "photos.sqlite")
    with serving(_app((index_dir,))) as base:
        yield base, names


def _set_date(driver, field: str, value: str) -> None:
    """What the date picker does: the input's value, then a change event."""
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('change', {bubbles: true}));",
        f"filter-{field}",
        value,
    )


def test_date_camera_and_folder_filters(driver, meta_url):
    base, names = meta_url
    open_page(driver, base, len(CLASSES))
    driver.execute_script(RECORD_SEARCHES)
    filters = driver.find_element("id", "filters")
    assert not filters.is_displayed()  # folded away under "Refine"
    driver.find_element("css selector", "#refine summary").click()
    assert filters.is_displayed() and filters.is_enabled()
    assert not driver.find_element("id", "filters-note").is_displayed()
    _sky_stroke(driver)
    assert not {"after", "before", "folder", "camera"} & set(_last_query(driver))
    _set_date(driver, "after", "2020-01-10")
    _wait_search(driver, 2)
    q = _last_query(driver)
    assert q["after"] == "2020-01-10"
    ids = _api_ids(base, q)
    assert result_ids(driver) == ids and ids and set(ids) <= set(names[9:])
    _set_date(driver, "before", "2020-01-20")
    _wait_search(driver, 3)
    q = _last_query(driver)
    assert (q["after"], q["before"]) == ("2020-01-10", "2020-01-20")
    ids = _api_ids(base, q)
    assert result_ids(driver) == ids and ids and set(ids) <= set(names[9:19])
    driver.find_element("id", "filter-camera").send_keys("nikon")
    wait_for(driver, lambda d: _last_query(d).get("camera") == "nikon", "the camera filter")
    _wait_search(driver, len(_searches(driver)))
    q = _last_query(driver)
    ids = _api_ids(base, q)
    assert result_ids(driver) == ids and ids and set(ids) <= set(names[9:19:2])
    assert driver.find_element("id", "refine-count").text == "(3)"
    # a folder with no photos: no results, as the server says
    driver.find_element("id", "filter-folder").send_keys("nowhere\n")
    wait_for(driver, lambda d: _last_query(d).get("folder") == "nowhere", "the folder filter")
    _wait_search(driver, len(_searches(driver)))
    assert _api_ids(base, _last_query(driver)) == [] and result_ids(driver) == []
    assert _status(driver).startswith("0 results")
    assert console_errors(driver) == []


def test_no_filters_without_metadata(page):
    page.find_element("css selector", "#refine summary").click()
    assert page.find_element("id", "filters-note").is_displayed()
    assert not page.find_element("id", "filter-after").is_enabled()
    assert not page.find_element("id", "filter-camera").is_enabled()
    _sky_stroke(page)
    assert not {"after", "before", "folder", "camera"} & set(_last_query(page))


def _without_fields(app, names):
    """``app`` as a server whose search does not take the fields ``names``: its /api/health lists them not."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/api/health":
            return await app(scope, receive, send)
        body = []

        async def edit(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"content-length"]
                return await send({**message, "headers": headers})
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            health = json.loads(b"".join(body))
            health["fields"] = [f for f in health["fields"] if f not in names]
            await send({"type": "http.response.body", "body": json.dumps(health).encode()})

        return await app(scope, receive, edit)

    return wrapped


def test_controls_for_fields_the_server_does_not_take(driver, folder):
    gone = ("weights", "like", "unlike", "exclude")
    with serving(_without_fields(_app(folder), gone)) as base:
        open_page(driver, base, len(CLASSES))
        driver.execute_script(RECORD_SEARCHES)
        _sky_stroke(driver)
        first = driver.find_elements("css selector", "#results li")[0]
        for css in (".like", ".unlike"):
            assert not first.find_element("css selector", css).is_displayed()
        assert not _palette_item(driver, "car").find_element("css selector", ".leave-out").is_displayed()
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(driver).context_click(_palette_item(driver, "car")).perform()
        ActionChains(driver).move_to_element(first.find_element("css selector", ".pick")).send_keys("lu").perform()
        driver.find_element("id", "search-button").click()  # one more search: it must carry none of them
        _wait_search(driver, 2)
        assert not set(gone) & set(_last_query(driver)) and _chips(driver) == []
        driver.find_element("tag name", "body").send_keys("\ue031")  # F1
        keys = [td.text for td in driver.find_elements("css selector", "#shortcut-table tbody td:first-child")]
        assert "L" not in keys and "U" not in keys and "Ctrl+Z" in keys
        driver.get("about:blank")
    assert console_errors(driver) == []


def test_more_and_fewer_like_these(page, url):
    from selenium.webdriver.common.action_chains import ActionChains

    _needs(url, "like", "unlike")
    _sky_stroke(page)
    _wait_results(page, K)
    a, b = result_ids(page)[3], result_ids(page)[5]
    _result(page, a).find_element("css selector", ".like").click()
    _wait_search(page, 2)
    q = _last_query(page)
    assert q["like"] == [a] and "unlike" not in q and "sketch" in q
    assert result_ids(page) == _api_ids(url, q)
    assert _chips(page) == [("like", a)]
    if _result(page, a):  # marked where it is in the grid
        assert "liked" in _result(page, a).get_attribute("class")
        assert _result(page, a).find_element("css selector", ".like").get_attribute("aria-pressed") == "true"
    # U: fewer like the result under the pointer
    target = _result(page, b) or page.find_elements("css selector", "#results li")[-1]
    b = target.get_attribute("data-id")
    ActionChains(page).move_to_element(target.find_element("css selector", ".pick")).send_keys("u").perform()
    _wait_search(page, 3)
    q = _last_query(page)
    assert (q["like"], q["unlike"]) == ([a], [b])
    assert result_ids(page) == _api_ids(url, q)
    if _result(page, b):
        assert "unliked" in _result(page, b).get_attribute("class")
    # L on the result with the focus (the pointer elsewhere) likes it too (taking back the only like would leave
    # unlike over a sketch, which the library refuses: a sketch alone has no maps to move)
    ActionChains(page).move_to_element(page.find_element("id", "status")).perform()
    target = next(
        li for li in page.find_elements("css selector", "#results li") if li.get_attribute("data-id") not in (a, b)
    )
    focused = target.get_attribute("data-id")
    page.execute_script("arguments[0].focus()", target.find_element("css selector", ".pick"))
    ActionChains(page).send_keys("l").perform()
    _wait_search(page, 4)
    q = _last_query(page)
    assert q["like"] == [a, focused] and q["unlike"] == [b]
    assert result_ids(page) == _api_ids(url, q)
    if focused in result_ids(page):  # the focus stays on that photo in the new grid, for the next key
        holder = "return document.activeElement.closest('#results li')?.dataset.id"
        assert page.execute_script(holder) == focused
    # undo, step by step
    _undo(page)
    _wait_search(page, 5)
    assert (_last_query(page)["like"], _last_query(page)["unlike"]) == ([a], [b])
    _undo(page)
    _wait_search(page, 6)
    q = _last_query(page)
    assert q["like"] == [a] and "unlike" not in q and result_ids(page) == _api_ids(url, q)
    page.find_element("css selector", "#chips .chip.like .remove").click()
    _wait_search(page, 7)
    assert "like" not in _last_query(page) and _chips(page) == []


def test_emphasise_a_class_of_the_query_photo(page, url):
    from selenium.webdriver.common.action_chains import ActionChains

    _needs(url, "weights")
    _sky_stroke(page)
    page.find_elements("css selector", "#results .pick")[2].click()
    _wait_search(page, 2)
    wait_for(page, lambda d: d.find_elements("css selector", "#seen-classes button"), "the classes seen")
    # the class under a click on the label map: read from the map the server sent
    img = page.find_element("id", "query-labels")
    png = base64.b64decode(img.get_attribute("src").split(",", 1)[1])
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    n = rgb.shape[0]
    colour = {tuple(c): i for i, c in enumerate(make_palette(len(CLASSES)).tolist())}
    x, y = 3, 12
    name = CLASSES[colour[tuple(rgb[y, x].tolist())]]
    w, h = img.rect["width"], img.rect["height"]
    ActionChains(page).move_to_element_with_offset(
        img, round((x + 0.5) * w / n - w / 2), round((y + 0.5) * h / n - h / 2)
    ).click().perform()
    _wait_search(page, 3)
    q = _last_query(page)
    assert q["weights"] == {name: 4} and "photo" in q
    assert result_ids(page) == _api_ids(url, q)
    assert _chips(page) == [("weights", name)]
    pressed = page.find_element("css selector", f'#seen-classes button[data-name="{name}"]')
    assert pressed.get_attribute("aria-pressed") == "true"
    # a class's button under the map emphasises it too; the chip's weight can change
    other = next(
        b for b in page.find_elements("css selector", "#seen-classes button") if b.get_attribute("data-name") != name
    )
    other_name = other.get_attribute("data-name")
    other.click()
    _wait_search(page, 4)
    assert _last_query(page)["weights"] == {name: 4, other_name: 4}
    weight = page.find_element("css selector", f'#chips .chip[data-name="{other_name}"] input')
    weight.send_keys("\ue009a\ue000", "8", "\ue004")
    _wait_search(page, 5)
    q = _last_query(page)
    assert q["weights"] == {name: 4, other_name: 8} and result_ids(page) == _api_ids(url, q)
    page.find_element("css selector", f'#chips .chip[data-name="{name}"] .remove').click()
    _wait_search(page, 6)
    assert _last_query(page)["weights"] == {other_name: 8}
    _undo(page)
    _wait_search(page, 7)
    q = _last_query(page)
    assert q["weights"] == {name: 4, other_name: 8} and result_ids(page) == _api_ids(url, q)
