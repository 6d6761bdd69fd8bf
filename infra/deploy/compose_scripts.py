"""infra/deploy/compose_scripts.py — the scripts of the image and of the compose services, run here:
http-probe against a local HTTP server; likes-entrypoint with secret files (the JWT secret, the
passwords it percent-encodes into the URLs); redis-start.sh and tidb-start.sh with the program
they start faked (and a real redis-server when one is installed), with a password that a URL,
redis.conf and SQL each must escape."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

from compose_common import ROOT, fail, ok


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        code = 200 if self.path == "/readyz" else 503 if self.path == "/busy" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def check_scripts(tmp: Path) -> None:
    probe = ROOT / "infra/docker/http-probe"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    port, silent_port = server.server_address[1], silent.getsockname()[1]
    cases = [
        (f"http://127.0.0.1:{port}/readyz", 0),
        (f"http://localhost:{port}/readyz", 0),
        (f"http://127.0.0.1:{port}/busy", 1),
        (f"http://127.0.0.1:{port}/nothing", 1),
        (f"http://127.0.0.1:{closed_port}/readyz", 1),
        (f"http://127.0.0.1:{silent_port}/readyz", 1),
        ("https://127.0.0.1/readyz", 2),
    ]
    for url, want in cases:
        got = subprocess.run(["bash", str(probe), url, "1"], capture_output=True, timeout=10).returncode
        if got != want:
            fail(f"http-probe {url}: exit {got}, expected {want}")
    server.shutdown()
    silent.close()
    entry = ROOT / "infra/docker/likes-entrypoint"
    secret = tmp / "jwt_secret"
    secret.write_text("s" * 64 + "\n")
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = subprocess.run(["sh", str(entry), "env"], capture_output=True, text=True,
                         env={**base, "LIKES_JWT_SECRET_FILE": str(secret)}).stdout
    if f"LIKES_AUTH__JWT_SECRET={'s' * 64}\n" not in out or "LIKES_JWT_SECRET_FILE" in out:
        fail("likes-entrypoint: did not load LIKES_JWT_SECRET_FILE into LIKES_AUTH__JWT_SECRET (or left the variable)")
    out = subprocess.run(["sh", str(entry), "env"], capture_output=True, text=True,
                         env={**base, "LIKES_JWT_SECRET_FILE": str(secret), "LIKES_AUTH__JWT_SECRET": "given"}).stdout
    if "LIKES_AUTH__JWT_SECRET=given\n" not in out:
        fail("likes-entrypoint: replaced a LIKES_AUTH__JWT_SECRET that was set")
    rc = subprocess.run(["sh", str(entry), "true"], capture_output=True,
                        env={**base, "LIKES_JWT_SECRET_FILE": str(tmp / "missing")}).returncode
    if rc != 2:
        fail(f"likes-entrypoint: a missing secret file exits {rc}, expected 2")
    rc = subprocess.run(["sh", str(entry), "true"], capture_output=True,
                        env={**base, "LIKES_JWT_SECRET_FILE": str(tmp)}).returncode
    if rc != 2:
        fail(f"likes-entrypoint: a directory as the secret file exits {rc}, expected 2")
    check_url_passwords(entry, tmp, base)
    real = check_redis_start(tmp, base)
    check_tidb_start(tmp, base)
    ok(f"http-probe ({len(cases)} cases: 2xx, 503, 404, refused, silent, bad URL), likes-entrypoint (JWT secret, "
       "the URLs' passwords percent-encoded), redis-start.sh (requirepass from the secret"
       f"{', a real redis-server wants it' if real else ''}) and tidb-start.sh (passwords escaped into the SQL) work")


# A password with what a URL, redis.conf and SQL each must escape.
PASSWORD = "p@ss:w/rd%&'\"\\ ~é"


def run(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


def check_url_passwords(entry: Path, tmp: Path, base: dict) -> None:
    pw = tmp / "url_password"
    pw.write_text(PASSWORD + "\n")
    env = {**base, "LIKES_DATABASE_URL": "mysql://likes@tidb:4000/likes", "LIKES_DATABASE_PASSWORD_FILE": str(pw),
           "LIKES_REDIS_URL": "redis://redis:6379/", "LIKES_REDIS_PASSWORD_FILE": str(pw)}
    res = run(["sh", str(entry), "env"], env)
    got = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    for var, user, host in (("LIKES_DATABASE_URL", "likes", "tidb:4000"), ("LIKES_REDIS_URL", "", "redis:6379")):
        u = urllib.parse.urlsplit(got.get(var, ""))
        if (u.username, u.netloc.rsplit("@", 1)[-1], urllib.parse.unquote(u.password or "")) != (user, host, PASSWORD):
            fail(f"likes-entrypoint: {var} became {got.get(var)!r} ({res.stderr.strip()}), not the URL with the password")
    if "_PASSWORD_FILE=" in res.stdout:
        fail("likes-entrypoint: left a *_PASSWORD_FILE variable to the binary")
    for what, extra in (("a URL that holds a password", {"LIKES_DATABASE_URL": "mysql://likes:x@tidb:4000/likes"}),
                        ("a missing password file", {"LIKES_REDIS_PASSWORD_FILE": str(tmp / "missing")}),
                        ("no URL beside the password file", {"LIKES_DATABASE_URL": ""})):
        rc = run(["sh", str(entry), "true"], {**env, **extra}).returncode
        if rc != 2:
            fail(f"likes-entrypoint: {what} exits {rc}, expected 2")


def check_redis_start(tmp: Path, base: dict) -> bool:
    """redis-start.sh with the image's entrypoint faked: the arguments it passes, the config file it
    writes; then, when redis-server is installed, a real one on that file wants the password."""
    script = ROOT / "infra/deploy/redis-start.sh"
    bindir, conf_dir = tmp / "redis-bin", tmp / "redis-conf"
    bindir.mkdir()
    fake = bindir / "docker-entrypoint.sh"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    pw = tmp / "redis_password"
    pw.write_text(PASSWORD + "\n")
    env = {**base, "PATH": f"{bindir}:{base['PATH']}", "LIKES_REDIS_PASSWORD_FILE": str(pw),
           "LIKES_REDIS_CONF_DIR": str(conf_dir)}
    res = run(["sh", str(script), "--maxmemory-policy", "noeviction"], env)
    conf = conf_dir / "redis.conf"
    want = ["redis-server", str(conf), "--maxmemory-policy", "noeviction"]
    if res.returncode != 0 or res.stdout.splitlines() != want:
        fail(f"redis-start.sh: ran {res.stdout.splitlines()} (exit {res.returncode}: {res.stderr.strip()}), expected {want}")
        return False
    m = re.fullmatch(r'requirepass "((?:[^"\\]|\\.)*)"\n', conf.read_text())
    if not m or re.sub(r"\\(.)", r"\1", m.group(1)) != PASSWORD:
        fail(f"redis-start.sh: {conf.name} is not `requirepass` with the password: {conf.read_text()!r}")
    if stat.S_IMODE(conf.stat().st_mode) & 0o077:
        fail(f"redis-start.sh: {conf.name} is readable by others ({oct(conf.stat().st_mode)})")
    rc = run(["sh", str(script)], {**env, "LIKES_REDIS_PASSWORD_FILE": str(tmp / "missing")}).returncode
    if rc != 2:
        fail(f"redis-start.sh: a missing password file exits {rc}, expected 2")
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        return False
    fake.write_text('#!/bin/sh\nexec "$@"\n')
    sock = tmp / "redis.sock"
    server = subprocess.Popen(["sh", str(script), "--port", "0", "--unixsocket", str(sock), "--save", "",
                               "--dir", str(tmp)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        anon = run(["redis-cli", "-s", str(sock), "ping"], base).stdout.strip()
        authed = run(["redis-cli", "-s", str(sock), "ping"], {**base, "REDISCLI_AUTH": PASSWORD}).stdout.strip()
        if not anon.startswith("NOAUTH") or authed != "PONG":
            fail(f"redis-start.sh: a real redis-server answered {anon!r} without the password, {authed!r} with it")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return True


def check_tidb_start(tmp: Path, base: dict) -> None:
    """tidb-start.sh with tidb-server faked: its arguments, and the SQL it renders from the template."""
    script = ROOT / "infra/deploy/tidb-start.sh"
    fake = tmp / "tidb-server"
    fake.write_text('#!/bin/sh\nfor a; do case $a in --initialize-sql-file=*) cat "${a#*=}";; '
                    '*) echo "arg $a";; esac; done\n')
    fake.chmod(0o755)
    likes, root = tmp / "tidb_likes_password", tmp / "tidb_root_password"
    likes.write_text(PASSWORD + "@ROOT_PASSWORD@\n")
    root.write_text("root-" + PASSWORD + "\n")
    out_dir = tmp / "tidb-init"
    env = {**base, "LIKES_DATABASE_PASSWORD_FILE": str(likes), "LIKES_TIDB_ROOT_PASSWORD_FILE": str(root),
           "LIKES_TIDB_INIT_TEMPLATE": str(ROOT / "infra/deploy/tidb-init.sql"),
           "LIKES_TIDB_INIT_DIR": str(out_dir), "LIKES_TIDB_SERVER": str(fake)}
    res = run(["bash", str(script), "--store=tikv", "--path=pd:2379"], env)

    def lit(p: str) -> str:
        return "'" + p.replace("\\", "\\\\").replace("'", "''") + "'"

    sql = res.stdout
    wants = ["arg --store=tikv\narg --path=pd:2379\n",
             f"CREATE USER IF NOT EXISTS 'likes'@'%' IDENTIFIED BY {lit(PASSWORD + '@ROOT_PASSWORD@')};",
             f"ALTER USER 'root'@'%' IDENTIFIED BY {lit('root-' + PASSWORD)};"]
    missing = [w for w in wants if w not in sql]
    if res.returncode != 0 or missing:
        fail(f"tidb-start.sh: exit {res.returncode} ({res.stderr.strip()}); its output lacks {missing}:\n{sql}")
    rendered = out_dir / "tidb-init.sql"
    if rendered.exists() and stat.S_IMODE(rendered.stat().st_mode) & 0o077:
        fail(f"tidb-start.sh: the rendered SQL is readable by others ({oct(rendered.stat().st_mode)})")
    for what, extra in (("a missing password file", {"LIKES_TIDB_ROOT_PASSWORD_FILE": str(tmp / "missing")}),
                        ("a password of two lines", {"LIKES_DATABASE_PASSWORD_FILE": str(tmp / "two-lines")})):
        (tmp / "two-lines").write_text("a\nb\n")
        rc = run(["bash", str(script)], {**env, **extra}).returncode
        if rc != 2:
            fail(f"tidb-start.sh: {what} exits {rc}, expected 2")
