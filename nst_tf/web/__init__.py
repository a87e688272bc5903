"""A web page to start runs, watch them paint and browse what was made: `python run.py --serve`.

  app.py      the Starlette app: the routes, the token and header checks
  jobs.py     the queue: one child `python run.py ...` at a time, its progress and error line
  form.py     which options the page may set, and the child's flags they make (checked by nst_tf.config)
  store.py    the outputs folder as the page sees it, and the one check of every name a client sends
  uploads.py  uploaded pictures: checked like any input, kept in <outputs>/.uploads/
  static/     the page: one HTML file, its script and style; nothing loaded from elsewhere

The web stack (starlette, uvicorn) is the `[web]` extra; importing `nst_tf` or `nst_tf.web` loads
neither it nor TensorFlow (the runs are child processes). The package is `web`, not `serve`, because
`nst_tf.serve` is the entry function (a subpackage of that name would replace it once imported).
See docs/web.md.
"""
from __future__ import annotations

import ipaddress
import secrets
import socket
import sys

DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    from nst_tf.errors import UserError
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port "
                        "(0: any free one).") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(output_dir: str = "outputs", host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
          say=print) -> None:
    """Serves the page for the runs under `output_dir` until Ctrl-C (which stops the running run, saving
    its state for a resume). On an address other than loopback a token is required: `token`, or one made
    here; it is printed with the address and the page asks for it."""
    from nst_tf.errors import UserError
    try:
        import uvicorn
        from nst_tf.web.app import create_app
    except ImportError as e:
        raise UserError(f"the web page needs the web extra ({e.name} is missing): pip install -e '.[web]'") from None
    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(16)
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    hosts = ("127.0.0.1", "localhost", "[::1]", "::1") if is_loopback(host) and not token else ("*",)
    app = create_app(output_dir, token=token, hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{'127.0.0.1' if shown == '0.0.0.0' else shown}:{port}/"
    say(f"nst_tf page for the runs in {app.state.outputs}: open {address}" + (f"?token={token}" if token else ""))
    if token:
        say(f"token: {token} (every request needs it; the page asks for it)")
    say("Ctrl-C stops the server (a running run is stopped and can be resumed).")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
