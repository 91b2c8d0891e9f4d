"""Make docs/images/serve.png: `segsearch serve`'s page in headless Chromium, on synthetic photos (no real data,
no network weights): sky and road drawn, a result picked as the query photo, a car painted over it, photos with
building left out, the label map of a result and the classes of its distance shown under the pointer.

``python docs/make_serve_screenshot.py [OUT.png] [WIDTHxHEIGHT]`` (needs chromium, chromedriver, selenium and the
serve extra, as tests/test_serve_page.py). The photos and the stand-in network are docs/make_gui_screenshot.py's,
so this picture and docs/gui.png show the same folder.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from make_gui_screenshot import CLASSES, ColourSegmenter, make_folder  # noqa: E402

from browser_page import draw, make_driver, open_page, select_class, serving, wait_for  # noqa: E402
from segsearch.serve.app import create_app  # noqa: E402


def searched(driver, drawn: str) -> None:
    """Wait for the answer to a query with the classes ``drawn`` (its status line names them)."""
    idle = "return !document.body.classList.contains('busy')"
    wait_for(driver, lambda d: d.execute_script(idle) and d.find_element("id", "status").text.endswith(drawn), drawn)


def brush(driver, radius: int) -> None:
    driver.execute_script(
        "const s = document.getElementById('brush-size'); s.value = arguments[0];s.dispatchEvent(new Event('input'));",
        radius,
    )


def main(out: str = "docs/images/serve.png", size: str = "1280x800") -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    width, height = (int(v) for v in size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        make_folder(Path(tmp))
        app = create_app(Path(tmp) / "index", segmenter=ColourSegmenter(), reload_seconds=0)
        with serving(app) as url:
            driver = make_driver(width, height)
            try:
                driver.execute_cdp_cmd(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
                )
                open_page(driver, url, len(CLASSES))
                brush(driver, 30)
                select_class(driver, "sky")
                draw(driver, [(0.05, 0.12), (0.5, 0.14), (0.95, 0.12)])
                select_class(driver, "road")
                draw(driver, [(0.05, 0.88), (0.5, 0.86), (0.95, 0.88)])
                searched(driver, "drawn: sky, road")
                driver.find_elements("css selector", "#results .pick")[1].click()
                wait_for(driver, lambda d: d.find_element("id", "seen").is_displayed(), "what the system sees")
                select_class(driver, "car")
                brush(driver, 12)
                draw(driver, [(0.35, 0.66), (0.6, 0.66)])
                searched(driver, "drawn: sky, road, car")
                leave_out = '#class-list li[data-index="{}"] .leave-out'.format(CLASSES.index("building"))
                driver.find_element("css selector", leave_out).click()  # a chip: photos with building left out
                wait_for(driver, lambda d: d.find_elements("css selector", "#chips .chip"), "the chip")
                driver.execute_script("return new Promise(r => setTimeout(r, 300))")  # its search has started
                searched(driver, "drawn: sky, road, car")
                ActionChains(driver).move_to_element(
                    driver.find_elements("css selector", "#results .pick")[4]
                ).perform()
                loaded = "return [...document.querySelectorAll('img.thumb, #query-labels')].every(i => i.complete)"
                wait_for(driver, lambda d: d.execute_script(loaded), "the images")
                driver.execute_script("return new Promise(r => setTimeout(r, 300))")  # the overlay's fade-in
                png = driver.get_screenshot_as_png()
            finally:
                driver.quit()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    shot = Image.open(__import__("io").BytesIO(png)).convert("RGB")
    shot.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({Path(out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
