"""infra/deploy/compose_scripts.py — the image's scripts run here: http-probe against a local HTTP
server, likes-entrypoint with secret files."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
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
    ok(f"http-probe ({len(cases)} cases: 2xx, 503, 404, refused, silent, bad URL) and likes-entrypoint (secret file) work")
