"""mxlive.py - start one real mxnode for a Python system test and read its
metrics both ways: the Prometheus text over one kept-alive HTTP connection
and `mxctl --json stats` over the admin port.

Like test/app/node_harness.c: loopback ports chosen at run time (port 0,
read back from the ready line), Redis pointed at a closed port, the cube
tables from MX_SHARED_DIR; the node is killed when the test ends, even on
failure (the context manager, and PR_SET_PDEATHSIG through prctl)."""
import ctypes
import http.client
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time

READY_RE = re.compile(r" http [^ ]*:(\d+), nng port (\d+), admin port (\d+), node id ([0-9a-f]+)")
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _pdeathsig():
    libc = ctypes.CDLL(None)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Node:
    def __init__(self, env=None, ready_s=15.0):
        self.bin = os.environ["MX_BIN_DIR"]
        shared = os.environ.get("MX_SHARED_DIR", "../shared")
        e = dict(os.environ)
        e.update({
            "MX_CUBE_TABLE": f"{shared}/data/cube_probability_black.csv",
            "MX_CUBE_TABLE_ADDITIONAL": f"{shared}/data/cube_probability_additional.csv",
            "MX_HTTP_ADDR": "127.0.0.1:0",
            "MX_NNG_ADDR": "tcp://127.0.0.1:0",
            "MX_ADMIN_ADDR": "tcp://127.0.0.1:0",
            "MX_JWT_SECRET": "node-test-secret-node-test-secret-0123456789",
            "MX_SCHEDULERS": "2",
            "MX_LOG_LEVEL": "warn",
            "MX_REDIS_URL": "redis://127.0.0.1:1/0",
            "MX_NEXON_API_KEY": "test-key",
        })
        e.update(env or {})
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([f"{self.bin}/mxnode"], env=e, stdout=subprocess.PIPE,
                                     stderr=self.log, preexec_fn=_pdeathsig)
        self.conn = None
        buf = b""
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if not r:
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            m = READY_RE.search(buf.decode(errors="replace"))
            if m:
                self.http_port, self.nng_port, self.admin_port = map(int, m.groups()[:3])
                return
        self.close()
        raise RuntimeError(f"mxnode did not report ready: {buf!r} {self.stderr()!r}")

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def get(self, path):
        """GET on one kept-alive connection (the same acceptor every time)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        return r.status, r.read().decode()

    def prom(self):
        status, body = self.get("/actuator/prometheus")
        if status != 200:
            raise RuntimeError(f"/actuator/prometheus answered {status}: {body[:200]}")
        return body

    def stats(self):
        out = subprocess.run([f"{self.bin}/mxctl", "--node", f"tcp://127.0.0.1:{self.admin_port}",
                              "--json", "stats"], capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            raise RuntimeError(f"mxctl stats failed: {out.stderr}")
        return json.loads(out.stdout)

    def close(self):
        if self.conn:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parse_prom(text):
    """[(name, {label: value}, float)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise ValueError(f"not a sample line: {line!r}")
        labels = dict(LABEL_RE.findall(m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out
