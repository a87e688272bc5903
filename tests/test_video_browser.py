"""A clip's result.mp4 plays in a browser: Debian's headless Chromium (/usr/bin/chromium; .ci/run installs
it) driven by Playwright loads the file written by `clip_io.write_mp4` (H.264, yuv420p, odd sides padded,
AAC audio from the source) in a <video> element, decodes it at its size and duration, and plays on. Nothing
downloads a browser (never `playwright install`)."""
import os

import pytest

from nst_tf.video import clip_io
from tests.test_serve_browser import BROWSER_ARGS, CHROMIUM
from tests.video_clips import pan, write_video

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} "
                                 "(apt-get install -y chromium; .ci/run installs it)")]


def test_result_mp4_plays_in_chromium(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    source = str(tmp_path / "source.mp4")
    write_video(source, pan(24, 48, 64), fps=12, audio_seconds=2.0)
    clip = clip_io.open_clip(source)
    frames = [f[:47, :63] for f in clip.frames()]   # odd sides, as a stylized canvas may have
    clip_io.write_mp4(frames, str(tmp_path / "result.mp4"), clip.fps, source, 0.0, 2.0)
    page_file = tmp_path / "play.html"
    page_file.write_text('<video id="v" src="result.mp4" muted></video>')
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_function("(v => v.readyState >= 2 || v.error)(document.getElementById('v'))",
                                   timeout=30_000)
            video = page.evaluate("(v => ({error: v.error && v.error.code, width: v.videoWidth, "
                                  "height: v.videoHeight, duration: v.duration}))(document.getElementById('v'))")
            assert video["error"] is None, f"Chromium cannot decode result.mp4 (MediaError {video['error']})"
            assert (video["width"], video["height"]) == (64, 48)
            assert video["duration"] == pytest.approx(2.0, abs=0.2)
            page.evaluate("document.getElementById('v').play()")
            page.wait_for_function("document.getElementById('v').currentTime > 0.5", timeout=30_000)
        finally:
            browser.close()
