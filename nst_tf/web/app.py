"""The web page's server: a Starlette app over the outputs folder and the run queue.

Routes (JSON unless said otherwise):
  GET  /                        the page (static/index.html; static/app.js, static/app.css beside it)
  GET  /api/info                the form's options and defaults, the modes, the stylizers on disk
  GET  /api/runs                every run and sweep under the outputs folder, newest first, and the queue
  GET  /api/runs/{name}         one run: settings, status, snapshots, loss rows, live progress, sweep cells
  GET  /api/runs/{name}/form    its form, for "run again with changes"
  POST /api/uploads?name=F      the body is one image file; returns its upload id (or the one-line error)
  POST /api/runs                starts a run (queued) from a form; 400 with run.py's error line if it is bad
  POST /api/runs/{name}/stop    stops it (SIGINT: it saves its last image and state)
  POST /api/runs/{name}/resume  continues it; {"num_steps": N} extends a finished one
  GET  /files/{name}/{path}     a file of a run folder (pictures, run.flags, losses.csv, ...)
  GET  /uploads/{id}            an uploaded picture
Live updates are polling (the page asks /api/runs/{name} about once a second while a run is active): one
small request per second is nothing for a local server, and it needs no open connection to survive a
closed laptop lid or a proxy.

Security: see docs/web.md. In short: every /api, /files and /uploads request carries the token when one is
set; requests that change something must carry the header X-NST (a page on another site cannot send it
without a CORS preflight, which this server never answers), and the Host header must be the address the
server listens on (no DNS rebinding); names the client sends are checked by `nst_tf.web.store`.
"""
from __future__ import annotations

import contextlib
import hmac
import json
import os

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from nst_tf.errors import UserError
from nst_tf.web import form, jobs, store, uploads

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MAX_JSON = 64 * 1024
COOKIE = "nst_token"


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Guard:
    """ASGI middleware: the token on /api, /files and /uploads; the X-NST header on every request that
    changes something."""

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(("/api", "/files", "/uploads")):
            request = Request(scope)
            if self.token is not None:
                given = (request.headers.get("x-token") or request.cookies.get(COOKIE)
                         or request.query_params.get("token") or "")
                if not hmac.compare_digest(given.encode(), self.token.encode()):
                    return await _error("a token is needed: the one the server printed.", 401)(scope, receive, send)
            if request.method not in ("GET", "HEAD") and request.headers.get("x-nst") != "1":
                return await _error("requests that change something need the header X-NST: 1.", 403)(
                    scope, receive, send)
        return await self.app(scope, receive, send)


async def _json_body(request: Request) -> dict:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON:
            raise UserError("the request is too large.")
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise UserError("the request is not JSON.") from None
    if not isinstance(data, dict):
        raise UserError("the request is not a JSON object.")
    return data


def create_app(outputs: str, token: str | None = None, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
               queue: jobs.Queue | None = None) -> Starlette:
    """The app serving the runs under `outputs` (created if missing). `token`: required on every data
    request when set; `hosts`: the Host headers accepted ("*" for any); `queue`: where runs go (a new
    `jobs.Queue` of run.py by default)."""
    outputs = os.path.abspath(outputs)
    os.makedirs(outputs, exist_ok=True)
    queue = queue or jobs.Queue()

    def live(name: str) -> dict | None:
        job = queue.latest(name)
        return job.as_dict() if job else None

    def run_info(name: str, detail: bool = False) -> dict:
        info = store.describe(outputs, name, detail)
        info["job"] = live(name)
        if info["job"] and info["job"]["state"] in ("queued", "running"):
            info["status"] = info["job"]["state"]
        return info

    async def index(request: Request) -> Response:
        return FileResponse(os.path.join(STATIC, "index.html"), headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> Response:
        names = store.run_names(outputs)
        stylizers = [n for n in names if os.path.isfile(os.path.join(outputs, n, "stylizer.keras"))]
        return JSONResponse({"options": form.spec(), "modes": list(form.MODES), "stylizers": stylizers,
                             "sweep_axes": list(form.SWEEP_AXES), "outputs": outputs,
                             "max_upload_mb": uploads.MAX_BYTES // 2**20})

    async def runs(request: Request) -> Response:
        listing = []
        for name in store.run_names(outputs):
            try:
                listing.append(run_info(name))
            except store.NotFound:   # removed meanwhile
                continue
        names = {r["name"] for r in listing}
        pending = [j for j in queue.listing() if j["state"] == "queued" and j["name"] not in names]
        return JSONResponse({"runs": listing, "queue": queue.listing(), "pending": pending})

    async def run_detail(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            return JSONResponse(run_info(name, detail=True))
        except store.NotFound:
            job = queue.latest(name) if store.NAME.match(name) else None
            if job:   # queued or starting: no folder yet
                return JSONResponse({"name": name, "kind": "run", "status": job.state, "job": job.as_dict(),
                                     "flags": {}, "summary": {}, "image": None, "snapshots": [],
                                     "losses": {"columns": [], "rows": []}, "files": [], "resumable": False})
            return _error("no such run.", 404)

    async def run_form(request: Request) -> Response:
        try:
            return JSONResponse(form.prefill(outputs, request.path_params["name"]))
        except store.NotFound:
            return _error("no such run.", 404)

    async def upload(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > uploads.MAX_BYTES:
            return _error(f"the file is more than the {uploads.MAX_BYTES // 2**20} MB an upload may have; "
                          "downscale or compress it first.", 413)
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > uploads.MAX_BYTES:
                return _error(f"the file is more than the {uploads.MAX_BYTES // 2**20} MB an upload may have; "
                              "downscale or compress it first.", 413)
        try:
            # decoding a large picture takes a while: in a thread, so that the page's polling goes on
            upload_id = await run_in_threadpool(uploads.save, outputs, request.query_params.get("name", ""), bytes(data))
        except UserError as e:
            return _error(str(e))
        return JSONResponse({"id": upload_id, "url": f"/uploads/{upload_id}"})

    async def start(request: Request) -> Response:
        try:
            data = await _json_body(request)
            lines = form.flag_lines(outputs, data)
            config = form.check(outputs, lines)
        except UserError as e:
            return _error(str(e))
        name = form.run_name(outputs, config, {j["name"] for j in queue.listing()})
        job = queue.add(name, [*lines, f"--output_dir={outputs}", f"--run_name={name}"], "start")
        return JSONResponse({"name": name, "job": job.as_dict()})

    def _existing(name: str) -> str:
        path = store.resolve(outputs, name, folder=True)
        if not store.is_run(path):
            raise store.NotFound(name)
        return path

    async def stop(request: Request) -> Response:
        name = request.path_params["name"]
        if not store.NAME.match(name) or not queue.stop(name):
            return _error("this run is not running or queued here.", 409)
        return JSONResponse({"name": name, "stopping": True})

    async def resume(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            path = _existing(name)
            data = await _json_body(request)
        except store.NotFound:
            return _error("no such run.", 404)
        except UserError as e:
            return _error(str(e))
        if queue.active(name):
            return _error("this run is already running or queued.", 409)
        args = [f"--resume={path}"]
        action = "resume"
        if data.get("num_steps") not in (None, ""):
            try:
                steps = int(data["num_steps"])
            except (TypeError, ValueError):
                return _error(f"--num_steps={data['num_steps']!r} is not a whole number.")
            if steps < 1:
                return _error("--num_steps must be at least 1.")
            args.append(f"--num_steps={steps}")
            action = "extend"
        try:   # run.py's own check of the resumed config, before a child starts
            from nst_tf import rundir
            rundir.resumed_config(path, {"num_steps": steps} if action == "extend" else {})
        except UserError as e:
            return _error(str(e))
        if action == "resume" and not store.is_sweep(path) and not os.path.isfile(os.path.join(path, "state.npz")):
            return _error("this run has no state.npz to continue from; run it again instead.")
        job = queue.add(name, args, action)
        return JSONResponse({"name": name, "job": job.as_dict()})

    async def run_file(request: Request) -> Response:
        try:
            path = store.resolve(outputs, request.path_params["path"])
        except store.NotFound:
            return _error("not found.", 404)
        download = request.query_params.get("download") == "1"
        return FileResponse(path, headers={"Cache-Control": "no-cache"},
                            filename=os.path.basename(path) if download else None,
                            content_disposition_type="attachment" if download else "inline")

    async def upload_file(request: Request) -> Response:
        try:
            path = uploads.path_of(outputs, request.path_params["upload_id"])
        except UserError:
            return _error("not found.", 404)
        return FileResponse(path)

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", index),
        Route("/favicon.ico", no_icon),
        Route("/api/info", info),
        Route("/api/runs", runs, methods=["GET"]),
        Route("/api/runs", start, methods=["POST"]),
        Route("/api/uploads", upload, methods=["POST"]),
        Route("/api/runs/{name}", run_detail),
        Route("/api/runs/{name}/form", run_form),
        Route("/api/runs/{name}/stop", stop, methods=["POST"]),
        Route("/api/runs/{name}/resume", resume, methods=["POST"]),
        Route("/files/{path:path}", run_file),
        Route("/uploads/{upload_id}", upload_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts)), Middleware(_Guard, token=token)]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        queue.close()   # the running child saves its state (SIGINT), so a later server can resume it

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.queue = queue
    app.state.outputs = outputs
    return app
