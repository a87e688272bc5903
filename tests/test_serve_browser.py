"""The web page in a real browser: Debian's headless Chromium (/usr/bin/chromium, `apt-get install
chromium`; .ci/run installs it) driven by Playwright, against `python run.py --serve` on 127.0.0.1 with a
free port. Load the page, upload two small images made here, start a tiny run (offline backbone, a
snapshot every 2 steps), see the picture change twice, stop, resume, see it change again, stop, find the
run in the gallery. Nothing downloads a browser (never `playwright install`)."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import smooth_image, stripes_image

CHROMIUM = "/usr/bin/chromium"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} "
                                 "(apt-get install -y chromium; .ci/run installs it)")]
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """The address of `python run.py --serve` on a free port of 127.0.0.1, stopped (SIGINT, then kill) after."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py"), "--serve", f"--port={free_port()}",
                                f"--output_dir={tmp_path / 'outputs'}"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env, start_new_session=True)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "open http" not in line:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
        address = re.search(r"open (http://\S+)", line)
        assert address, f"the server did not start: {line!r}"
        yield address.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_start_watch_stop_resume_in_chromium(server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    photo, painting = tmp_path / "photo.png", tmp_path / "painting.png"
    Image.fromarray((smooth_image(40, 48) * 255).astype(np.uint8)).save(photo)
    Image.fromarray((stripes_image(48, 48) * 255).astype(np.uint8)).save(painting)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(server)
            page.set_input_files("#photo-input", str(photo))
            page.set_input_files("#style-input", str(painting))
            page.wait_for_selector("#photo-thumbs img")
            page.wait_for_selector("#style-thumbs img")
            page.fill("#opt-max_size", "32")
            page.fill("#opt-num_steps", "2000")
            page.fill("#opt-save_every", "2")
            page.click("details summary")
            page.select_option("#opt-backbone", "vgg16_hed")
            page.fill("#opt-log_every", "2")
            page.click("#start")
            assert page.inner_text("#form-error") == ""

            def pictures(count: int) -> list[str]:   # the live image's sources until `count` differ
                seen = []
                deadline = time.monotonic() + 300   # TensorFlow's start on a busy 2-core machine included
                while len(seen) < count and time.monotonic() < deadline:
                    src = page.get_attribute("#live-image", "src")
                    if src and (not seen or seen[-1] != src):
                        seen.append(src)
                    page.wait_for_timeout(200)
                return seen

            def shown() -> str:   # what the page says, for a failure's message
                return " | ".join(page.inner_text(s) for s in ("#status", "#stats", "#run-error")) + \
                    " | log: " + page.eval_on_selector("#log", "e => e.textContent")

            assert len(pictures(3)) == 3, shown()   # the first snapshot, then two changes
            assert "running" in page.inner_text("#status")
            assert re.search(r"step \d+ of 2000", page.inner_text("#stats"))
            page.wait_for_selector("#plot polyline")   # the loss curves are drawn
            page.click("#stop")
            page.wait_for_function("document.querySelector('#status').textContent === 'interrupted'")
            assert page.is_visible("#resume") and page.is_visible("#dl-result")
            page.click("#resume")
            page.wait_for_function("document.querySelector('#status').textContent === 'running'")
            assert len(pictures(3)) == 3, shown()   # it goes on painting after the resume
            page.click("#stop")
            page.wait_for_function("document.querySelector('#status').textContent === 'interrupted'")
            page.click("button[data-tab=gallery]")
            card = page.wait_for_selector(".card[data-name^='photo_painting_']")
            assert "interrupted" in card.inner_text()
            assert card.query_selector("img") is not None
        finally:
            browser.close()
