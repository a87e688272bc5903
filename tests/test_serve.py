"""The web page's server (nst_tf/web) without a browser and without TensorFlow: what it serves, what it
refuses (paths, uploads, flags, tokens, hosts, headers), and the run queue driving a stand-in for run.py
that writes a run folder and obeys SIGINT as run.py does. The real run.py in a real browser is
tests/test_serve_browser.py."""
import io
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

starlette = pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")
from starlette.testclient import TestClient  # noqa: E402

from nst_tf.web import app as web_app  # noqa: E402
from nst_tf.web import jobs, uploads  # noqa: E402

HEADERS = {"X-NST": "1"}

# Stands in for run.py: makes the run folder its flags name, logs a progress bar and a snapshot a step,
# and on SIGINT writes summary.json "interrupted" and exits 130; "--content=...bad..." fails like run.py.
FAKE_RUN = textwrap.dedent('''
    import json, os, signal, sys, time
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
    if "bad" in args.get("content", ""):
        print("error: the photo is bad; choose another.", file=sys.stderr)
        sys.exit(2)
    folder = args.get("resume") or os.path.join(args["output_dir"], args["run_name"])
    os.makedirs(os.path.join(folder, "snapshots"), exist_ok=True)
    if "resume" not in args:
        open(os.path.join(folder, "run.flags"), "w").write("\\n".join("--%s=%s" % kv for kv in args.items()) + "\\n")
    open(os.path.join(folder, "argv.json"), "w").write(json.dumps(sys.argv[1:]))
    total = int(args.get("num_steps", 1000))
    def stop(*_):
        json.dump({"status": "interrupted", "steps": 3}, open(os.path.join(folder, "summary.json"), "w"))
        open(os.path.join(folder, "state.npz"), "w").write("x")
        print("stopped: interrupted", file=sys.stderr)
        sys.exit(130)
    signal.signal(signal.SIGINT, stop)
    for step in range(1, total + 1):
        sys.stderr.write("\\rsteps:  1%%| | %d/%d [00:01<00:09, 4.00step/s]" % (step, total))
        sys.stderr.flush()
        open(os.path.join(folder, "snapshots", "step_%05d.png" % step), "w").write("png")
        time.sleep(0.05)
    json.dump({"status": "done", "steps": total}, open(os.path.join(folder, "summary.json"), "w"))
''')


def png_bytes(size=(20, 16), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def site(tmp_path):
    """(client, outputs folder, a secret file beside it) with a finished run "done_run" and a queue of the
    stand-in run.py."""
    outputs = tmp_path / "outputs"
    run = outputs / "done_run"
    (run / "snapshots").mkdir(parents=True)
    (run / "run.flags").write_text("--mode=transfer\n--max_size=32\n--num_steps=4\n--content=/x/photo.jpg\n")
    (run / "snapshots" / "step_00002.png").write_bytes(png_bytes(seed=1))
    (run / "result.png").write_bytes(png_bytes())
    os.utime(run / "result.png", (time.time() + 1, time.time() + 1))   # written after the last snapshot
    (run / "summary.json").write_text('{"status": "done", "steps": 4}')
    (run / "losses.csv").write_text("step,wall_s,total\n0,0.1,5.0\n2,0.2,3.0\n")
    (tmp_path / "secret.png").write_bytes(png_bytes(seed=2))
    (tmp_path / "secret.flags").write_text("--secret=1\n")
    fake = tmp_path / "fake_run.py"
    fake.write_text(FAKE_RUN)
    queue = jobs.Queue(run_py=str(fake))
    app = web_app.create_app(str(outputs), hosts=("testserver",), queue=queue)
    with TestClient(app) as client:
        yield client, outputs, tmp_path
    queue.close(timeout=5)


def wait_for(predicate, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_import_loads_neither_tensorflow_nor_the_web_stack():
    code = ("import sys, nst_tf, nst_tf.web; assert callable(nst_tf.serve); "
            "print(sorted(m for m in ('tensorflow', 'starlette', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_page_and_listing(site):
    client, outputs, _ = site
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http" not in client.get("/static/app.js").text.replace("http://www.w3.org/2000/svg", "")   # no CDN
    runs = client.get("/api/runs").json()["runs"]
    assert [r["name"] for r in runs] == ["done_run"]
    assert runs[0]["status"] == "done" and runs[0]["image"] == "done_run/result.png"
    assert runs[0]["flags"]["max_size"] == "32"
    detail = client.get("/api/runs/done_run").json()
    assert detail["snapshots"] == ["done_run/snapshots/step_00002.png"]
    assert detail["losses"]["rows"] == [[0, 0.1, 5.0], [2, 0.2, 3.0]]
    assert client.get("/files/done_run/result.png").content == png_bytes()
    download = client.get("/files/done_run/run.flags?download=1")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]


def test_a_clip_run_shows_its_preview_and_offers_its_mp4(site):
    client, outputs, _ = site
    one = outputs / "clip_run"
    one.mkdir()
    (one / "run.flags").write_text("--content=/x/clip.mp4\n")
    (one / "preview.png").write_bytes(png_bytes(seed=3))
    (one / "result.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (one / "summary.json").write_text('{"status": "done"}')
    many = outputs / "clips_run"
    (many / "clips" / "a").mkdir(parents=True)
    (many / "run.flags").write_text("--content=/x/clips\n")
    (many / "clips" / "a" / "preview.png").write_bytes(png_bytes(seed=4))
    detail = client.get("/api/runs/clip_run").json()
    assert detail["image"] == "clip_run/preview.png" and "result.mp4" in detail["files"]
    assert client.get("/files/clip_run/result.mp4").content.endswith(b"ftypmp42")
    assert client.get("/api/runs/clips_run").json()["image"] == "clips_run/clips/a/preview.png"


@pytest.mark.parametrize("path", [
    "/files/../secret.png", "/files/%2e%2e/secret.png", "/files/done_run/..%2F..%2Fsecret.png",
    "/files/done_run/%2E%2E/%2E%2E/secret.flags", "/files//etc/passwd", "/files/%2Fetc%2Fpasswd",
    "/files/done_run/..\\..\\secret.png", "/files/done_run/link.png", "/files/linked_run/result.png",
    "/files/done_run/config", "/files/done_run/snapshots", "/files/.uploads/x.png", "/uploads/..%2Fsecret.png",
    "/uploads/%2e%2e%2fdone_run%2fresult.png", "/api/runs/..", "/api/runs/%2e%2e%2Foutputs", "/api/runs/linked_run",
    "/api/runs/done_run%2F..%2F..%2F/form", "/static/..%2Fapp.py", "/static/%2e%2e/store.py"])
def test_nothing_outside_the_outputs_is_served(site, path):
    client, outputs, tmp = site
    os.symlink(tmp / "secret.png", outputs / "done_run" / "link.png")
    os.symlink(outputs / "done_run", outputs / "linked_run")
    (outputs / "done_run" / "config").write_text("x")
    response = client.get(path)
    assert response.status_code in (404, 400), path
    assert response.content != png_bytes(seed=2) and b"secret" not in response.content


def test_a_symlinked_run_is_not_listed(site):
    client, outputs, tmp = site
    (tmp / "elsewhere").mkdir()
    (tmp / "elsewhere" / "run.flags").write_text("--mode=transfer\n")
    os.symlink(tmp / "elsewhere", outputs / "elsewhere")
    assert [r["name"] for r in client.get("/api/runs").json()["runs"]] == ["done_run"]


def test_uploads_are_checked_by_content(site, monkeypatch):
    client, outputs, _ = site
    post = lambda data, name="a.png": client.post(f"/api/uploads?name={name}", content=data, headers=HEADERS)
    good = post(png_bytes(), name="../../My Photo.jpg")   # the client's name is only a label
    assert good.status_code == 200
    upload_id = good.json()["id"]
    assert upload_id.startswith("My_Photo-") and upload_id.endswith(".png")   # the type from the bytes
    assert (outputs / ".uploads" / upload_id).is_file()
    assert client.get(f"/uploads/{upload_id}").content == png_bytes()
    assert post(b"#!/bin/sh\necho hi\n", name="x.png").json()["error"].startswith("x: not an image")
    assert "empty" in post(b"").json()["error"]
    assert "truncated" in post(png_bytes((64, 64))[:300]).json()["error"]
    monkeypatch.setattr(uploads, "MAX_PIXELS", 100)
    assert "Mpixel" in post(png_bytes((20, 20), seed=3)).json()["error"]
    monkeypatch.setattr(uploads, "MAX_BYTES", 1000)
    big = post(b"\0" * 2000)
    assert big.status_code == 413 and "MB" in big.json()["error"]
    assert sorted(os.listdir(outputs / ".uploads")) == [upload_id]   # nothing refused was kept


def test_form_refuses_what_would_write_or_read_elsewhere(site):
    client, outputs, tmp = site
    photo = client.post("/api/uploads?name=p.png", content=png_bytes(), headers=HEADERS).json()["id"]
    start = lambda form: client.post("/api/runs", json=form, headers=HEADERS)
    base = {"mode": "transfer", "content": photo, "style": [photo]}
    for name, value in [("output_dir", str(tmp)), ("flagfile", "/etc/passwd"), ("resume", str(tmp)),
                        ("run_name", "../x"), ("weights", "/etc/passwd"), ("content_mask", "/etc/passwd")]:
        response = start({**base, "options": {name: value}})
        assert response.status_code == 400 and "cannot be set from the page" in response.json()["error"], name
    for bad in [str(tmp / "secret.png"), "../secret.png", "done_run/result.png", "x-0123456789ab.png"]:
        response = start({**base, "content": bad})
        assert response.status_code == 400 and "unknown upload" in response.json()["error"], bad
    assert "sweep from the page varies" in start({**base, "sweep": ["output_dir:/tmp,/var"]}).json()["error"]
    assert "max_size" in start({**base, "options": {"max_size": "abc"}}).json()["error"]   # run.py's message
    assert "line" in start({**base, "options": {"num_steps": "5\n--output_dir=/tmp"}}).json()["error"]
    assert "add a painting" in start({"mode": "transfer", "content": photo}).json()["error"]
    assert "trained stylizer" in start({"mode": "apply", "content": photo, "model": "../done_run"}).json()["error"]
    assert client.get("/api/runs").json()["queue"] == []


def test_token_host_and_header(tmp_path):
    app = web_app.create_app(str(tmp_path), token="s3cret", hosts=("testserver",), queue=jobs.Queue())
    with TestClient(app) as client:
        assert client.get("/").status_code == 200   # the page itself, which asks for the token
        assert client.get("/api/info").status_code == 401
        assert client.get("/api/info", headers={"X-Token": "wrong"}).status_code == 401
        assert client.get("/api/info", headers={"X-Token": "s3cret"}).status_code == 200
        assert client.get("/api/info?token=s3cret").status_code == 200
        client.cookies.set("nst_token", "s3cret")
        assert client.get("/api/info").status_code == 200
        assert client.get("/files/x/result.png").status_code == 404   # past the token: only 404
        client.cookies.clear()
        assert client.get("/files/x/result.png").status_code == 401
        # a page on another site can neither post without the X-NST header nor reach us under its own name
        assert client.post("/api/runs", json={}, headers={"X-Token": "s3cret"}).status_code == 403
        assert client.get("/api/info", headers={"Host": "evil.example", "X-Token": "s3cret"}).status_code == 400


def test_run_stop_resume_extend_through_the_queue(site):
    client, outputs, _ = site
    photo = client.post("/api/uploads?name=cat.png", content=png_bytes(), headers=HEADERS).json()["id"]
    style = client.post("/api/uploads?name=art.png", content=png_bytes(seed=5), headers=HEADERS).json()["id"]
    form = {"mode": "transfer", "content": photo, "style": [style],
            "options": {"max_size": "32", "num_steps": "1000", "backbone": "vgg16_hed"}}
    first = client.post("/api/runs", json=form, headers=HEADERS).json()["name"]
    second = client.post("/api/runs", json={**form, "options": {**form["options"], "num_steps": "3"}},
                         headers=HEADERS).json()["name"]
    assert first.startswith("cat_art_") and first != second
    detail = lambda name: client.get(f"/api/runs/{name}").json()
    live = wait_for(lambda: (d := detail(first))["job"]["step"] and d)
    assert live["status"] == "running" and live["job"]["rate"] == 4.0 and live["job"]["total"] == 1000
    assert detail(second)["status"] == "queued"   # one at a time
    argv = (outputs / first / "argv.json").read_text()
    assert f"--output_dir={outputs}" in argv and f"--run_name={first}" in argv and "--backbone=vgg16_hed" in argv
    assert client.post(f"/api/runs/{first}/resume", json={}, headers=HEADERS).status_code == 409
    assert client.post(f"/api/runs/{first}/stop", headers=HEADERS).status_code == 200
    stopped = wait_for(lambda: (d := detail(first))["status"] == "interrupted" and d)
    assert stopped["job"]["state"] == "stopped" and stopped["job"]["returncode"] == 130 and stopped["resumable"]
    wait_for(lambda: detail(second)["status"] == "done")
    assert client.post(f"/api/runs/{first}/resume", json={}, headers=HEADERS).status_code == 200
    wait_for(lambda: f"--resume={outputs / first}" in (outputs / first / "argv.json").read_text())
    assert detail(first)["job"]["action"] == "resume" and detail(first)["status"] == "running"
    client.post(f"/api/runs/{first}/stop", headers=HEADERS)
    wait_for(lambda: detail(first)["status"] == "interrupted")
    assert client.post(f"/api/runs/{second}/resume", json={"num_steps": 6}, headers=HEADERS).status_code == 200
    wait_for(lambda: detail(second)["job"]["state"] == "done" and detail(second)["job"]["action"] == "extend")
    assert "--num_steps=6" in (outputs / second / "argv.json").read_text()
    assert "not a whole number" in client.post(f"/api/runs/{second}/resume", json={"num_steps": "x"},
                                          headers=HEADERS).json()["error"]
    again = client.get(f"/api/runs/{first}/form").json()   # "run again with changes"
    assert again["content"] == photo and again["style"] == [style] and again["options"]["max_size"] == "32"


def test_a_failing_child_shows_its_error_line(site):
    client, outputs, _ = site
    bad = client.post("/api/uploads?name=bad.png", content=png_bytes(seed=9), headers=HEADERS).json()["id"]
    name = client.post("/api/runs", json={"mode": "content", "content": bad}, headers=HEADERS).json()["name"]
    job = wait_for(lambda: (j := client.get(f"/api/runs/{name}").json()["job"])["state"] == "failed" and j)
    assert job["error"] == "error: the photo is bad; choose another." and job["returncode"] == 2


def test_serve_says_when_the_port_is_taken(tmp_path):
    import socket
    from nst_tf.errors import UserError
    from nst_tf.web import serve
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    with pytest.raises(UserError, match="choose another --port"):
        serve(str(tmp_path), "127.0.0.1", taken.getsockname()[1], say=lambda *_: None)
    taken.close()


def test_a_sweep_shows_its_cells_as_they_fill(site):
    client, outputs, _ = site
    sweep = outputs / "sweep_cat_art"
    for cell in ("seed=1", "seed=2"):
        (sweep / cell).mkdir(parents=True)
        (sweep / cell / "run.flags").write_text(f"--{cell}\n")
    (sweep / "sweep.flags").write_text("--mode=transfer\n--sweep=seed:1,2\n--sweep=tv_weight:1,10\n")
    (sweep / "seed=1" / "result.png").write_bytes(png_bytes())
    (sweep / "seed=1" / "summary.json").write_text('{"status": "done"}')
    detail = client.get("/api/runs/sweep_cat_art").json()
    assert detail["kind"] == "sweep" and detail["status"] == "incomplete" and detail["resumable"]
    assert detail["flags"]["sweep"] == "seed:1,2 | tv_weight:1,10"
    assert detail["cells"] == [{"name": "seed=1", "status": "done", "image": "sweep_cat_art/seed=1/result.png"},
                               {"name": "seed=2", "status": "incomplete", "image": None}]
    assert detail["image"] == "sweep_cat_art/seed=1/result.png"   # no grid yet: the first cell's picture
    assert client.get("/files/sweep_cat_art/seed=1/result.png").status_code == 200


def test_a_sweep_from_the_form(site):
    client, outputs, _ = site
    photo = client.post("/api/uploads?name=cat.png", content=png_bytes(), headers=HEADERS).json()["id"]
    form = {"mode": "transfer", "content": photo, "style": [photo], "sweep": ["seed:1,2", ""],
            "options": {"num_steps": "2"}}
    name = client.post("/api/runs", json=form, headers=HEADERS).json()["name"]
    assert name.startswith("sweep_cat_cat_")
    argv = wait_for(lambda: (outputs / name / "argv.json").is_file() and (outputs / name / "argv.json").read_text())
    assert "--sweep=seed:1,2" in argv
    bad = client.post("/api/runs", json={**form, "sweep": ["seed:1,2", "seed:3"]}, headers=HEADERS)
    assert bad.status_code == 400 and "seed" in bad.json()["error"]   # the axes' own check, as run.py's


def test_run_py_serve_prints_the_address_and_stops_on_ctrl_c(tmp_path):
    """run.py --serve on a free port of 127.0.0.1 with a token: the address is printed, the token is needed,
    Ctrl-C (SIGINT) ends it with status 130, as it ends a run."""
    import re
    import signal
    import urllib.error
    import urllib.request
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen([sys.executable, os.path.join(root, "run.py"), "--serve", "--port=0", "--token=t0k",
                                f"--output_dir={tmp_path / 'out'}"], stdout=subprocess.PIPE, text=True,
                               cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stdout.readline()
        address = re.search(r"open (http://127\.0\.0\.1:\d+/)\?token=t0k$", line.strip())
        assert address, line
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(address.group(1) + "api/info", timeout=10)
        with urllib.request.urlopen(address.group(1) + "api/info?token=t0k", timeout=10) as response:
            assert b'"max_size"' in response.read()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130   # as run.py ends on Ctrl-C


@pytest.mark.skipif("strength" not in __import__("nst_tf.config").config.field_sections(),
                    reason="the schema has no --strength yet")
def test_strength_is_offered_and_checked_as_run_py_checks_it(site):
    client, outputs, _ = site
    assert client.get("/api/info").json()["options"][0]["name"] == "strength"   # first: the one number to set
    photo = client.post("/api/uploads?name=cat.png", content=png_bytes(), headers=HEADERS).json()["id"]
    form = {"mode": "transfer", "content": photo, "style": [photo], "options": {"strength": "2"}}
    refused = client.post("/api/runs", json=form, headers=HEADERS)
    assert refused.status_code == 400 and refused.json()["error"].startswith("--strength=2.0 must be between 0")
    name = client.post("/api/runs", json={**form, "options": {"strength": "0.7"}}, headers=HEADERS).json()["name"]
    argv = wait_for(lambda: (outputs / name / "argv.json").is_file() and (outputs / name / "argv.json").read_text())
    assert "--strength=0.7" in argv
