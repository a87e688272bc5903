"""nst_tf.cluster on a local Ray bound to 127.0.0.1: files and results equal an in-process run, a worker
killed mid-task is retried and resumes from its last sync, a UserError fails its task alone, a bug stops
the job, Ctrl-C keeps the synced state, and every socket of the cluster is on the loopback address.

The task here is a TensorFlow-free stand-in for the engine: it "optimizes" a float array step by step,
writes state.npz and a log at every k-th step, syncs, and resumes from state.npz when it finds one.
"""
import _thread
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil
import pytest

from nst_tf import cluster
from nst_tf.errors import UserError

STEPS, SYNC_EVERY = 40, 5
TIMEOUT_S = 45.0   # every job here; a hang fails the test instead of blocking CI


def optimize_fn(payload, workdir, sync, progress):
    """Steps x toward a target, resuming from state.npz; the side folder (same machine) tells the test
    this attempt's PID and the last step it synced."""
    side, name = payload.get("side"), payload["name"]
    if side:
        with open(os.path.join(side, name + ".pid"), "w") as f:
            f.write(f"{os.getpid()} {time.time()}")
    state = os.path.join(workdir, "state.npz")
    if os.path.exists(state):
        with np.load(state) as f:
            x, step = f["x"], int(f["step"])
    else:
        x, step = np.random.default_rng(payload["seed"]).normal(size=(16, 16)).astype(np.float32), 0
    with open(os.path.join(workdir, "starts.txt"), "a") as f:
        f.write(f"{step}\n")
    log = os.path.join(workdir, "log.csv")
    if step and os.path.exists(log):   # as the engine's logger resumes: the rows after the state's step go
        # (a stop's last sync can carry rows logged after the last state, on a loaded machine)
        with open(log) as f:
            rows = [r for r in f.read().splitlines() if int(r.split(",")[0]) <= step]
        with open(log, "w") as f:
            f.write("".join(r + "\n" for r in rows))
    if payload.get("error"):
        raise UserError(payload["error"])
    if payload.get("bug"):
        raise ValueError("a bug in the task")
    target = np.linspace(-1, 1, x.size, dtype=np.float32).reshape(x.shape)
    while step < STEPS:
        x = (x - np.float32(0.1) * (x - target) + np.float32(0.01) * np.sin(x)).astype(np.float32)
        step += 1
        time.sleep(payload.get("sleep", 0.0))
        with open(os.path.join(workdir, "log.csv"), "a") as f:
            f.write(f"{step},{float(np.abs(x - target).sum()):.9g}\n")
        if step % SYNC_EVERY == 0:
            tmp = os.path.join(workdir, ".state.npz.1.tmp")   # the engine's atomic write: temp file + rename
            with open(tmp, "wb") as f:
                np.savez(f, x=x, step=step)
            os.replace(tmp, state)
            sync()
            if side:
                with open(os.path.join(side, name + ".synced"), "w") as f:
                    f.write(str(step))
            if step == payload.get("hang_after"):   # a job that cannot end on time, whatever the load
                time.sleep(3600)
        progress(step, STEPS)
    os.makedirs(os.path.join(workdir, "out"), exist_ok=True)
    np.save(os.path.join(workdir, "out", "result.npy"), x)
    if side:
        with open(os.path.join(side, name + ".end"), "w") as f:
            f.write(str(time.time()))
    return {"step": step, "sum": float(x.sum())}


def tasks(n=3, **extra):
    return [cluster.Task(f"{i:02d}_cell", {"name": f"{i:02d}_cell", "seed": i, **extra}) for i in range(n)]


def reference(tmp_path_factory, n=3):
    dest = tmp_path_factory.mktemp("in_process")
    results = cluster.run_tasks(optimize_fn, tasks(n), str(dest), cluster=None, show_progress=False)
    return results, {t.folder: cluster.read_folder(os.path.join(dest, t.folder)) for t in tasks(n)}


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    return reference(tmp_path_factory)


@pytest.fixture(scope="module")
def ray_cluster():
    saved = os.environ.pop("RAY_ADDRESS", None)   # never join a cluster from the environment here
    try:
        with cluster.local_cluster(workers=2) as ray:
            yield ray
    finally:
        if saved is not None:
            os.environ["RAY_ADDRESS"] = saved


def folders(dest, names):
    return {n: cluster.read_folder(os.path.join(dest, n)) for n in names}


def test_importing_the_module_imports_neither_ray_nor_tensorflow():
    code = "import sys, nst_tf.cluster; print(sorted(m for m in ('ray', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_in_process_run_writes_in_dest_and_reports_user_errors(tmp_path, expected):
    results, files = expected
    assert [r.value["step"] for r in results] == [STEPS] * 3 and all(r.error is None for r in results)
    assert files["00_cell"]["starts.txt"] == b"0\n" and "state.npz" in files["00_cell"]
    assert not any(cluster._is_temp(os.path.basename(rel)) for f in files.values() for rel in f)
    bad = cluster.run_tasks(optimize_fn, [cluster.Task("x", {"name": "x", "seed": 0, "error": "bad photo"})],
                            str(tmp_path), show_progress=False)
    assert bad[0].error == "bad photo" and bad[0].value is None


def test_ray_gives_the_in_process_results_and_files(ray_cluster, tmp_path, expected):
    results, files = expected
    got = cluster.run_tasks(optimize_fn, tasks(), str(tmp_path), cluster="ray", show_progress=False,
                            timeout_s=TIMEOUT_S)
    assert [r.value for r in got] == [r.value for r in results]
    assert [r.attempts for r in got] == [1, 1, 1]
    assert folders(tmp_path, files) == files


def test_shared_filesystem_tasks_write_dest_directly(ray_cluster, tmp_path, expected):
    results, files = expected
    got = cluster.run_tasks(optimize_fn, tasks(), str(tmp_path), cluster="ray", shared_fs=True,
                            show_progress=False, timeout_s=TIMEOUT_S)
    assert [r.value for r in got] == [r.value for r in results]
    assert folders(tmp_path, files) == files


def test_no_more_tasks_run_at_once_than_workers(ray_cluster, tmp_path):
    # a task waiting for the store (each sync) must not lend its CPU to another task
    side = tmp_path / "side"
    side.mkdir()
    job = tasks(4, side=str(side), sleep=0.02)
    cluster.run_tasks(optimize_fn, job, str(tmp_path / "dest"), cluster="ray", show_progress=False,
                      timeout_s=TIMEOUT_S)
    spans = [(float((side / f"{t.folder}.pid").read_text().split()[1]), float((side / f"{t.folder}.end").read_text()))
             for t in job]
    most = max(sum(a <= t < b for a, b in spans) for t, _ in spans)
    assert most <= 2, spans   # the fixture's 2 workers (3 ran at once when the store calls lent the CPU)


@pytest.mark.slow   # 4 s
def test_a_killed_worker_is_retried_and_resumes_from_its_last_sync(ray_cluster, tmp_path, expected):
    results, files = expected
    side = tmp_path / "side"
    side.mkdir()
    dest = tmp_path / "dest"
    job = tasks(2, side=str(side), sleep=0.05)
    out = {}
    runner = threading.Thread(target=lambda: out.update(results=cluster.run_tasks(
        optimize_fn, job, str(dest), cluster="ray", show_progress=False, timeout_s=TIMEOUT_S)), daemon=True)
    runner.start()
    synced_path, deadline = side / "00_cell.synced", time.monotonic() + 30
    while not (synced_path.exists() and int(synced_path.read_text() or 0) >= 2 * SYNC_EVERY):
        assert time.monotonic() < deadline and runner.is_alive(), "the task never reached its second sync"
        time.sleep(0.02)
    synced = int(synced_path.read_text())
    victim = psutil.Process(int((side / "00_cell.pid").read_text().split()[0]))
    assert victim.name().startswith("ray::"), victim.name()   # a Ray worker, not something else
    os.kill(victim.pid, signal.SIGKILL)
    runner.join(TIMEOUT_S + 10)
    assert not runner.is_alive() and "results" in out
    got = out["results"]
    assert [r.value for r in got] == [r.value for r in results[:2]]
    assert [r.attempts for r in got] == [2, 1]
    first, resumed = [int(s) for s in cluster.read_folder(dest / "00_cell")["starts.txt"].split()]
    assert first == 0 and resumed >= synced > 0 and resumed % SYNC_EVERY == 0 and resumed < STEPS
    strip = lambda f: {k: v for k, v in f.items() if k != "starts.txt"}  # noqa: E731
    assert strip(cluster.read_folder(dest / "00_cell")) == strip(files["00_cell"])
    assert folders(dest, ["01_cell"]) == {"01_cell": files["01_cell"]}


def test_a_user_error_fails_its_task_alone(ray_cluster, tmp_path, expected, capsys):
    results, files = expected
    job = tasks()
    job[1] = cluster.Task(job[1].folder, {**job[1].payload, "error": "photos/cat.jpg is not an image (corrupt?)"})
    got = cluster.run_tasks(optimize_fn, job, str(tmp_path), cluster="ray", show_progress=True,
                            timeout_s=TIMEOUT_S)
    bar = capsys.readouterr().err.split("\r")[-1]   # the one bar's last state
    assert "3.0/3 cells" in bar and "done 2, running 0, failed 1" in bar, bar
    assert got[1].error == "photos/cat.jpg is not an image (corrupt?)" and got[1].value is None
    assert got[1].attempts == 1   # not retried
    assert [got[0].value, got[2].value] == [results[0].value, results[2].value]
    assert folders(tmp_path, ["00_cell", "02_cell"]) == {k: files[k] for k in ("00_cell", "02_cell")}
    assert cluster.read_folder(tmp_path / "01_cell") == {"starts.txt": b"0\n"}   # what it left is synced


def test_a_bug_raises_with_its_type_and_stops_the_job(ray_cluster, tmp_path):
    job = tasks(2, sleep=0.05)
    job[0] = cluster.Task(job[0].folder, {**job[0].payload, "bug": True})
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="a bug in the task"):
        cluster.run_tasks(optimize_fn, job, str(tmp_path), cluster="ray", show_progress=False,
                          timeout_s=TIMEOUT_S, grace_s=5)
    assert time.monotonic() - t0 < STEPS * 0.05 + 5   # the other task was stopped, not waited for


def test_ctrl_c_keeps_the_synced_state_and_a_second_run_resumes_from_it(ray_cluster, tmp_path, expected):
    side = tmp_path / "side"
    side.mkdir()
    dest = tmp_path / "dest"
    synced = side / "00_cell.synced"

    caught = threading.Event()
    events = [("start", time.monotonic())]

    def interrupt_after_first_sync():
        deadline = time.monotonic() + 30
        while not synced.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        # Ctrl-C, and again if the first was lost: Python drops a KeyboardInterrupt that lands while the
        # main thread runs a finalizer ("Exception ignored"); this test once saw the job finish untouched
        events.append(("synced seen" if synced.exists() else "deadline", time.monotonic()))
        for _ in range(3):
            _thread.interrupt_main()
            events.append(("interrupt", time.monotonic()))
            if caught.wait(1.0):
                return

    def run():
        try:
            cluster.run_tasks(optimize_fn, tasks(1, side=str(side), sleep=0.1), str(dest), cluster="ray",
                              show_progress=False, timeout_s=TIMEOUT_S, grace_s=10)
        except KeyboardInterrupt:
            caught.set()
            raise

    # Ctrl-C raises KeyboardInterrupt here whatever this process inherited: a process started in the
    # background by a non-interactive shell (nohup pytest ... &) has SIGINT ignored, and interrupt_main
    # then does nothing
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_after_first_sync, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            run()
            events.append(("returned", time.monotonic()))
            raise AssertionError(f"not interrupted: {[(e, round(t - events[0][1], 2)) for e, t in events]}; "
                                 f"SIGINT handler {signal.getsignal(signal.SIGINT)!r}")
    finally:
        signal.signal(signal.SIGINT, previous)
    with np.load(dest / "00_cell" / "state.npz") as f:
        step = int(f["step"])
    assert 0 < step < STEPS
    log = cluster.read_folder(dest / "00_cell")["log.csv"].decode().split()
    assert int(log[-1].split(",")[0]) >= step   # the log kept up to the state (and the final sync after)
    # the interrupted run's folder is what the next run's first attempt starts from
    got = cluster.run_tasks(optimize_fn, tasks(1), str(dest), cluster="ray", show_progress=False,
                            timeout_s=TIMEOUT_S)
    assert got[0].value == expected[0][0].value and got[0].attempts == 1
    files = cluster.read_folder(dest / "00_cell")
    assert files.pop("starts.txt").split() == [b"0", str(step).encode()]
    assert files == {k: v for k, v in expected[1]["00_cell"].items() if k != "starts.txt"}


def test_a_job_past_its_timeout_is_stopped_with_its_files_kept(ray_cluster, tmp_path):
    # the task hangs after its first sync; the timeout leaves a loaded machine's worker start-up time to
    # reach it (1.5 s, with a task of 0.1 s steps, did not: no sync had happened in 3 of 3 loaded runs)
    with pytest.raises(TimeoutError, match="1 of 1 tasks"):
        cluster.run_tasks(optimize_fn, tasks(1, hang_after=SYNC_EVERY), str(tmp_path), cluster="ray",
                          show_progress=False, timeout_s=6, grace_s=2)
    assert "state.npz" in cluster.read_folder(tmp_path / "00_cell")


def test_a_task_whose_worker_dies_past_max_retries_fails_alone(ray_cluster, tmp_path, expected):
    side = tmp_path / "side"
    side.mkdir()
    out = {}
    runner = threading.Thread(target=lambda: out.update(results=cluster.run_tasks(
        optimize_fn, tasks(2, side=str(side), sleep=0.03), str(tmp_path / "dest"), cluster="ray",
        max_retries=0, show_progress=False, timeout_s=TIMEOUT_S)), daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    while not (side / "00_cell.synced").exists():
        assert time.monotonic() < deadline and runner.is_alive()
        time.sleep(0.02)
    os.kill(int((side / "00_cell.pid").read_text().split()[0]), signal.SIGKILL)
    runner.join(TIMEOUT_S + 10)
    got = out["results"]
    assert got[0].error.startswith("its worker died in each of its 1 attempt (") and got[0].value is None
    assert "\n" not in got[0].error and got[0].attempts == 1
    assert got[1].value == expected[0][1].value


def test_every_socket_of_the_local_cluster_is_on_loopback(ray_cluster, tmp_path):
    # workers exist only once tasks have run; make sure some do
    cluster.run_tasks(optimize_fn, tasks(2), str(tmp_path), cluster="ray", show_progress=False,
                      timeout_s=TIMEOUT_S)
    assert {n["NodeManagerAddress"] for n in ray_cluster.nodes()} == {cluster.LOOPBACK}
    me = psutil.Process()
    procs = [me] + me.children(recursive=True)
    names = names_of(procs)
    assert {"gcs_server", "raylet"} <= names, names
    assert_loopback_only(procs)


def names_of(procs):
    """The names of those of `procs` still alive (a short-lived child may end after it was listed)."""
    names = set()
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            names.add(p.name())
    return names


def assert_loopback_only(procs):
    """Every TCP/UDP socket of `procs`, listening or connected, is on 127.0.0.1 at both ends."""
    sockets = []
    for p in procs:
        try:
            connections = getattr(p, "net_connections", None) or p.connections   # psutil < 6: connections
            sockets += [(p.name(), c) for c in connections(kind="inet")]
        except psutil.NoSuchProcess:
            continue
    listening = [c for _, c in sockets if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 3, sockets   # gcs, raylet, workers: the check below cannot pass on nothing
    loopback = {"127.0.0.1", "::ffff:127.0.0.1"}
    off = [(name, c.laddr, c.raddr) for name, c in sockets
           if c.laddr.ip not in loopback or (c.raddr and c.raddr.ip not in loopback)]
    assert off == []


JOIN_DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[2])
from nst_tf import cluster
from tests.test_cluster import optimize_fn, tasks
results = cluster.run_tasks(optimize_fn, tasks(2), sys.argv[1], cluster=sys.argv[3], show_progress=False,
                            timeout_s=60)
print(json.dumps([[r.value, r.error, r.attempts] for r in results]))
"""


def free_loopback_ports(n):
    # bound, read and released: `ray start` takes them a moment later (a port that another process grabs in
    # between makes ray start fail loudly, not listen elsewhere)
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind((cluster.LOOPBACK, 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def own_processes(token):
    """The processes of the head started with `token` (every one inherits it; agents rename themselves)."""
    procs = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if p.pid != os.getpid() and p.environ().get("RAY_AUTH_TOKEN") == token:
                procs.append(p)
    return procs


@pytest.mark.slow   # starts a `ray start --head` of its own beside the fixture's cluster
def test_a_driver_joins_a_running_cluster_and_leaves_it_running(tmp_path, expected):
    # a head as a user starts one (`ray start --head`), here on 127.0.0.1 with a token of its own; a driver
    # joins it through Ray Client (RAY_ADDRESS=ray://HOST:PORT, cluster="ray"), another one by its GCS
    # address as a driver on a cluster node would (cluster="HOST:PORT")
    import secrets
    session = tempfile.mkdtemp(prefix="ray_j_", dir="/tmp")
    gcs_port, client_port, agent_port = free_loopback_ports(3)
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env.pop("RAY_ADDRESS", None)
    # the head's workers import the task function as a cluster's nodes import nst_tf: from their own path
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    try:
        # a fixed runtime-env agent port: with the default (0) Ray 2.60's client proxy here twice got
        # runtime_env_agent_address port 0 and refused the client ("Starting Ray client server failed")
        subprocess.run([ray_cli, "start", "--head", "--node-ip-address", cluster.LOOPBACK, f"--port={gcs_port}",
                        f"--ray-client-server-port={client_port}", f"--runtime-env-agent-port={agent_port}",
                        "--include-dashboard=false", "--num-cpus=2", f"--temp-dir={session}",
                        "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=60)
        driver_env = dict(env)
        del driver_env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]   # nst_tf.cluster sets it for a loopback address
        outs = {}
        for name, how, address in (("client", "ray", f"ray://{cluster.LOOPBACK}:{client_port}"),
                                   ("gcs", f"{cluster.LOOPBACK}:{gcs_port}", None)):
            run_env = {**driver_env, **({"RAY_ADDRESS": address} if address else {})}
            for attempt in range(3):
                outs[name] = subprocess.run([sys.executable, "-c", JOIN_DRIVER, str(tmp_path / name), root, how],
                                            env=run_env, capture_output=True, text=True, timeout=90)
                # Ray 2.60's client proxy now and then refuses a client while the head is busy ("Initialization
                # failure from server", seen once in a full suite run under load); a user retries, so does this
                if outs[name].returncode == 0 or "Initialization failure from server" not in outs[name].stderr:
                    break
            assert outs[name].returncode == 0, outs[name].stderr[-3000:]
        head = own_processes(token)
        assert {"gcs_server", "raylet"} <= names_of(head)   # the driver left the cluster running
        assert_loopback_only(head)
    finally:
        # stop this head alone (`ray stop` would stop every Ray of this user on the machine)
        head = own_processes(token)
        for p in head:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(head, timeout=10)
        shutil.rmtree(session, ignore_errors=True)
    assert own_processes(token) == []
    for name, out in outs.items():
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got == [[r.value, None, 1] for r in expected[0][:2]], name
        assert folders(tmp_path / name, ["00_cell", "01_cell"]) == {k: expected[1][k] for k in ("00_cell", "01_cell")}
