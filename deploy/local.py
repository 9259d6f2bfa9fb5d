"""N replicas of the lab and HAProxy in front of them, on one box: a trial before a class, and the tests' fixture.

    .venv/bin/python -m deploy.local [--replicas 2] [--port 8500] [--first-replica-port 8501]
        [--saved-dir DIR] [--max-trainers N] [--print-config]

Each replica is ``streamlit run app.py`` on 127.0.0.1 with its own port, trainer cap and fork server. All
of them share one ``server.cookieSecret`` (``STREAMLIT_SERVER_COOKIE_SECRET``: a session's XSRF cookie,
signed by one replica, is valid on the one it fails over to) and one folder of saved models
(``VAE_LAB_SAVED_DIR``: a model saved by name on one replica is listed on all). HAProxy listens on
``--port`` and sends each browser to one replica for good: the first response inserts a cookie naming
it, and the browser's websocket, uploads (``/_stcore/upload_file``) and media (``/media/...``) follow it.
HAProxy asks every replica's ``/_stcore/health`` each second and takes one out after two failures;
a browser whose replica is gone reconnects to a live one (``option redispatch``).

``--print-config`` prints the HAProxy configuration for these settings and exits: ``deploy/haproxy.cfg``
is this output for the defaults (tests/test_deploy.py keeps them equal). For several boxes see
docs/serving.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "vae_lab_replica"  # the affinity cookie's name (HAProxy inserts it; the app never reads it)
HEALTH = "/_stcore/health"


def haproxy_config(
    port: int, replicas: list[tuple[str, int]], bind: str = "127.0.0.1", stats_port: int | None = None
) -> str:
    """HAProxy's configuration: ``bind:port`` in front of ``replicas`` [(host, port)], named r1, r2, …

    Session affinity by an inserted cookie, websockets through with long tunnel timeouts, active health
    checks on Streamlit's ``/_stcore/health``, and a browser whose replica is down sent to a live one.
    """
    servers = "\n".join(
        f"    server r{i} {host}:{p} check cookie r{i}" for i, (host, p) in enumerate(replicas, 1)
    )
    stats = (
        f"\nlisten stats\n    bind {bind}:{stats_port}\n    stats enable\n    stats uri /\n"
        if stats_port
        else ""
    )
    return f"""# VAE Workshop Lab behind HAProxy (written by `python -m deploy.local --print-config`; docs/serving.md)
global
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    # a page's HTTP requests
    timeout client 60s
    timeout server 60s
    # an attendee's websocket (a Streamlit session) lives as long as the tab is open
    timeout tunnel 12h
    timeout client-fin 10s
    # a request whose replica is down goes to a live one, three tries
    retries 3
    option redispatch

frontend lab
    bind {bind}:{port}
    default_backend replicas

backend replicas
    balance leastconn
    # affinity: the first response names its replica in a cookie; the websocket, uploads and /media follow it
    cookie {COOKIE} insert indirect nocache httponly
    # active health checks: out after 2 failed checks, back after 2 good ones; a replica taken out
    # closes its websockets, so that its browsers reconnect to a live one at once
    option httpchk GET {HEALTH}
    http-check expect string ok
    default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
{servers}
{stats}"""


def haproxy_binary() -> str | None:
    """The haproxy executable (Debian's is /usr/sbin/haproxy, often not on a user's PATH), or None."""
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )


def _get(url: str, timeout: float = 2.0) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    with opener.open(url, timeout=timeout) as r:
        return r.read()


def healthy(url: str) -> bool:
    """True when ``url`` (a replica or the balancer) answers Streamlit's health check."""
    try:
        return _get(url + HEALTH).strip() == b"ok"
    except OSError:
        return False


@dataclass
class Replica:
    """One ``streamlit run app.py`` of the trial."""

    name: str  # r1, r2, … as the balancer (and its cookie) names it
    port: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL its process group (the server, its fork server and workers): a crashed box."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@dataclass
class Trial:
    """Replicas and the balancer, started by :meth:`start` and ended by :meth:`stop` (a context manager)."""

    replicas_n: int = 2
    port: int = 8500
    first_replica_port: int = 8501
    saved_dir: Path | None = None  # None: a new temporary folder
    max_trainers: int = 0  # each replica's VAE_LAB_MAX_TRAINERS (0: its default)
    cookie_secret: str = ""  # "" : a new random one
    env: dict[str, str] = field(default_factory=dict)  # more environment for the replicas
    replicas: list[Replica] = field(default_factory=list)
    haproxy: subprocess.Popen | None = None
    workdir: Path | None = None
    replica_env: dict[str, str] = field(default_factory=dict)  # what every replica runs with (set by start)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        ports = range(self.first_replica_port, self.first_replica_port + self.replicas_n)
        return haproxy_config(self.port, [("127.0.0.1", p) for p in ports])

    def start(self, timeout: float = 120.0) -> Trial:
        """Start every replica, wait until each is healthy, then start HAProxy and wait until it answers."""
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed: sudo apt-get install haproxy (Debian/Ubuntu)")
        self.workdir = Path(tempfile.mkdtemp(prefix="vae_lab_deploy_"))
        if self.saved_dir is None:
            self.saved_dir = self.workdir / "saved"
        self.saved_dir.mkdir(parents=True, exist_ok=True)
        secret = self.cookie_secret or secrets.token_hex(32)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "STREAMLIT_SERVER_COOKIE_SECRET": secret,
            "VAE_LAB_SAVED_DIR": str(self.saved_dir),
            "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
            **({"VAE_LAB_MAX_TRAINERS": str(self.max_trainers)} if self.max_trainers else {}),
            **self.env,
        }
        self.replica_env = env
        try:
            for i in range(self.replicas_n):
                self.replicas.append(self._launch(f"r{i + 1}", self.first_replica_port + i, env))
            deadline = time.monotonic() + timeout
            for r in self.replicas:
                while not healthy(r.url):
                    if r.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"replica {r.name} did not start:\n{r.log_path.read_text()[-3000:]}"
                        )
                    time.sleep(0.1)
            cfg = self.workdir / "haproxy.cfg"
            cfg.write_text(self.config())
            log = open(self.workdir / "haproxy.log", "wb")  # noqa: SIM115 - the child keeps its own copy
            self.haproxy = subprocess.Popen(
                [binary, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
            while not healthy(self.url):
                if self.haproxy.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"haproxy did not start:\n{(self.workdir / 'haproxy.log').read_text()[-3000:]}"
                    )
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, name: str, port: int, env: dict[str, str]) -> Replica:
        log_path = self.workdir / f"{name}.log" if self.workdir else Path(f"/tmp/vae_lab_{name}.log")
        cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
        cmd += ["--server.port", str(port), "--server.address", "127.0.0.1"]
        cmd += ["--browser.gatherUsageStats", "false"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return Replica(name, port, proc, log_path)

    def restart(self, replica: Replica, timeout: float = 120.0) -> Replica:
        """Start ``replica`` again on its port (after :meth:`Replica.kill`), with the trial's settings."""
        new = self._launch(replica.name, replica.port, self.replica_env)
        self.replicas[self.replicas.index(replica)] = new
        deadline = time.monotonic() + timeout
        while not healthy(new.url):
            if new.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"replica {new.name} did not start again:\n{new.log_path.read_text()[-3000:]}"
                )
            time.sleep(0.1)
        return new

    def stop(self) -> None:
        """End HAProxy and every replica (their process groups: fork servers and workers too)."""
        procs = ([self.haproxy] if self.haproxy else []) + [r.proc for r in self.replicas]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:  # Streamlit can hang in shutdown with a websocket open
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)

    def __enter__(self) -> Trial:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--replicas", type=int, default=2, help="how many replicas (default 2)")
    p.add_argument("--port", type=int, default=8500, help="the balancer's port (default 8500)")
    p.add_argument("--first-replica-port", type=int, default=8501, help="replica i listens on this + i - 1")
    p.add_argument("--saved-dir", type=Path, default=None, help="the shared folder of saved models")
    p.add_argument("--max-trainers", type=int, default=0, help="each replica's trainer cap (0: its default)")
    p.add_argument("--print-config", action="store_true", help="print HAProxy's configuration and exit")
    args = p.parse_args()
    if args.replicas < 1:
        p.error("--replicas must be at least 1")
    trial = Trial(args.replicas, args.port, args.first_replica_port, args.saved_dir, args.max_trainers)
    if args.print_config:
        print(trial.config(), end="")
        return 0
    with trial:
        print(
            f"{args.replicas} replicas behind HAProxy: open {trial.url}  (Ctrl-C ends them all)", flush=True
        )
        print(f"saved models: {trial.saved_dir}; logs: {trial.workdir}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while trial.haproxy is not None and trial.haproxy.poll() is None:  # replicas may come and go
                time.sleep(1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
