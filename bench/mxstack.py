"""mxstack.py - the loopback stack the likes and seed-mix benchmarks run on.

Starts redis-server (AOF, appendfsync everysec), mariadbd (a fresh data
directory), mxstub and N mxnode processes on ports chosen at run time, in a
temporary directory that is removed at exit; signs users in through mxstub;
picks target characters no user owns. Python standard library only.
Not a test: benchmarks import it (bench/likes.sh, bench/seed_mix.sh).
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(cond, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if cond():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"mxstack: {what} not ready in {timeout} s")


class Stack:
    def __init__(self, build="build", shared=None):
        self.bin = os.path.join(ROOT, build, "bin")
        self.shared = shared or os.environ.get("MX_SHARED_DIR") or os.path.join(ROOT, "..", "shared")
        self.tmp = tempfile.mkdtemp(prefix="mx-bench-")
        self.procs = []
        self.nodes = []
        atexit.register(self.stop)

    def spawn(self, args, log, env=None, stdout=None):
        p = subprocess.Popen(args, stdout=stdout or open(os.path.join(self.tmp, log + ".out"), "w"),
                             stderr=open(os.path.join(self.tmp, log + ".err"), "w"), env=env,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except Exception:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except Exception:
                pass
        self.procs = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- servers ----

    def redis(self):
        self.redis_port = free_port()
        self.spawn(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                    "--dir", self.tmp, "--logfile", os.path.join(self.tmp, "redis.log")], "redis")
        wait(lambda: self.rcli("PING") == "PONG", 10, "redis-server")
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"

    def rcli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args], capture_output=True,
                              text=True, timeout=10).stdout.strip()

    def mariadb(self):
        self.mysql_port = free_port()
        data = os.path.join(self.tmp, "mysql")
        user = ["--user=root"] if os.getuid() == 0 else []
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--skip-test-db",
                        "--auth-root-authentication-method=normal", *user],
                       capture_output=True, check=True)
        self.sock = os.path.join(self.tmp, "mysql.sock")
        self.spawn(["mariadbd", "--no-defaults", f"--datadir={data}", f"--port={self.mysql_port}",
                    "--bind-address=127.0.0.1", f"--socket={self.sock}", "--skip-log-bin",
                    "--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=1",
                    *user], "mariadb")
        wait(lambda: self.sql("SELECT 1") == "1", 30, "mariadbd")
        self.sql("CREATE DATABASE IF NOT EXISTS mx CHARACTER SET utf8mb4;"
                 "CREATE USER IF NOT EXISTS 'mx'@'127.0.0.1' IDENTIFIED BY 'mx';"
                 "GRANT ALL ON mx.* TO 'mx'@'127.0.0.1';")
        self.mysql_url = f"mysql://mx:mx@127.0.0.1:{self.mysql_port}/mx"

    def sql(self, q):
        r = subprocess.run(["mariadb", "--no-defaults", "-S", self.sock, "-uroot", "-N", "-e", q],
                           capture_output=True, text=True, timeout=30)
        return r.stdout.strip()

    def stub(self):
        self.stub_port = free_port()
        self.spawn([os.path.join(self.bin, "mxstub"), "--listen", f"127.0.0.1:{self.stub_port}"],
                   "mxstub")
        self.stub_base = f"http://127.0.0.1:{self.stub_port}"
        wait(lambda: "listening" in open(os.path.join(self.tmp, "mxstub.out")).read(), 10, "mxstub")

    def node(self, name, extra=None):
        env = dict(os.environ)
        env.update({
            "MX_NODE_NAME": name, "MX_HTTP_ADDR": "127.0.0.1:0", "MX_NNG_ADDR": "tcp://127.0.0.1:0",
            "MX_ADMIN_ADDR": "tcp://127.0.0.1:0",
            "MX_JWT_SECRET": "bench-secret-bench-secret-0123456789abcdef",
            "MX_CUBE_TABLE": os.path.join(self.shared, "data", "cube_probability_black.csv"),
            "MX_REDIS_URL": self.redis_url, "MX_MYSQL_URL": self.mysql_url,
            "MX_NEXON_BASE_URL": self.stub_base, "MX_NEXON_API_KEY": "bench-key",
            "MX_LOG_LEVEL": "warn", "MX_SPOOL_PATH": os.path.join(self.tmp, f"spool-{name}.log"),
        })
        env.update(extra or {})
        out = os.path.join(self.tmp, name + ".out")
        p = self.spawn([os.path.join(self.bin, "mxnode")], name, env=env)
        wait(lambda: "http" in open(out).read() and "admin port" in open(out).read(), 20, name)
        line = open(out).read()
        http = int(line.split(" http ")[1].split(",")[0].rsplit(":", 1)[1])
        admin = int(line.split("admin port ")[1].split(",")[0])
        n = {"name": name, "http": http, "admin": admin, "proc": p}
        self.nodes.append(n)
        return n

    # ---- HTTP ----

    def get(self, url, headers=None, method="GET", body=None):
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stub_list(self, key):
        st, body = self.get(self.stub_base + "/maplestory/v1/character/list",
                            {"x-nxopen-api-key": key})
        chars = [c for a in json.loads(body)["account_list"] for c in a["character_list"]]
        return chars

    def users(self, n, node_ports):
        """n users signed in (round robin over the nodes): dicts with token, ocids."""
        out = []
        for i in range(n):
            key = f"bench-user-{i}"
            chars = self.stub_list(key)
            port = node_ports[i % len(node_ports)]
            st, body = self.get(f"http://127.0.0.1:{port}/auth/login",
                                {"Content-Type": "application/json"}, "POST",
                                json.dumps({"apiKey": key, "userIgn": chars[0]["character_name"]}).encode())
            if st != 200:
                raise SystemExit(f"mxstack: login of {key} failed: {st} {body[:200]}")
            out.append({"token": json.loads(body)["data"]["accessToken"],
                        "ocids": {c["ocid"] for c in chars}})
        return out

    def targets(self, n, users):
        """n character names mxstub knows that no user owns."""
        owned = set().union(*(u["ocids"] for u in users))
        names, seen, k = [], set(), 0
        while len(names) < n and k < 1000:
            for c in self.stub_list(f"bench-target-{k}"):
                if c["ocid"] not in owned and c["character_name"] not in seen and len(names) < n:
                    seen.add(c["character_name"])
                    names.append(c["character_name"])
            k += 1
        return names

    def prom(self, port):
        st, body = self.get(f"http://127.0.0.1:{port}/actuator/prometheus")
        return body


def quote(name):
    return urllib.parse.quote(name, safe="")


def loadavg():
    return open("/proc/loadavg").read().split()[0]
