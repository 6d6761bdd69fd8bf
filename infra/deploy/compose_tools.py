"""infra/deploy/compose_tools.py — the configs the compose file mounts, loaded by the real tools as
the containers see them: nginx -t, promtool check config, amtool check-config."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from compose_common import PROJECT_DIR, begin, command_of, env_of, fail, mounts_of, ok


def materialize(svc: dict, root: Path) -> None:
    """Copies a service's bind mounts to where it mounts them, under root."""
    for src, dst, bind in mounts_of(svc):
        if not bind:
            continue
        source = (PROJECT_DIR / src).resolve()
        target = root / dst.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        elif source.is_file():
            shutil.copy2(source, target)


def flag(cmd: list[str], name: str) -> str | None:
    for arg in cmd:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def run_tool(argv: list[str], what: str, env: dict | None = None) -> bool:
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        fail(f"{what}: {argv[0]} is not installed")
        return False
    res = subprocess.run(argv, capture_output=True, text=True, env=env)
    out = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        fail(f"{what}: `{' '.join(argv)}` failed:\n{out}")
        return False
    print("    " + out.replace("\n", "\n    "))
    return True


def check_tools(c: dict, tmp: Path) -> None:
    services = c["services"]
    # Nginx: the config infra/deploy/nginx-start.sh renders, in the real nginx.
    begin()
    nginx = services.get("nginx")
    if nginx is not None:
        root = tmp / "nginx"
        materialize(nginx, root)
        entry = nginx.get("entrypoint") or []
        script = next((root / a.lstrip("/") for a in entry if str(a).endswith(".sh")), None)
        if script is None or not script.exists():
            fail(f"nginx: entrypoint {entry} names no mounted script")
        else:
            env = dict(os.environ)
            env.update(env_of(nginx))
            env["LIKES_NGINX_UPSTREAMS"] = " ".join(
                "127.0.0.1:" + u.rsplit(":", 1)[1] for u in env_of(nginx)["LIKES_NGINX_UPSTREAMS"].split()
            )
            template = re.search(r"(/\S+)", str(env_of(nginx).get("LIKES_NGINX_TEMPLATE", "/etc/likes/nginx.conf.template")))
            env["LIKES_NGINX_TEMPLATE"] = str(root / template.group(1).lstrip("/"))
            env["LIKES_NGINX_PREFIX"] = str(root / "prefix")
            if run_tool(["sh", str(script), "-t"], "nginx -t on the compose Nginx config", env):
                ok("nginx -t accepts infra/nginx/nginx.conf as infra/deploy/nginx-start.sh renders it "
                   "(upstreams at 127.0.0.1 instead of the service names)")
    # Prometheus: promtool on the config as mounted (rules and file_sd targets beside it).
    begin()
    prom = services.get("prometheus")
    if prom is not None:
        root = tmp / "prometheus"
        materialize(prom, root)
        conf = flag(command_of(prom), "config.file") or "/etc/prometheus/prometheus.yml"
        if run_tool(["promtool", "check", "config", str(root / conf.lstrip("/"))], "promtool on the compose Prometheus config"):
            ok("promtool check config accepts the compose Prometheus config, its rules and targets")
    begin()
    am = services.get("alertmanager")
    if am is not None:
        root = tmp / "alertmanager"
        materialize(am, root)
        conf = flag(command_of(am), "config.file") or "/etc/alertmanager/alertmanager.yml"
        if run_tool(["amtool", "check-config", str(root / conf.lstrip("/"))], "amtool on the compose Alertmanager config"):
            ok("amtool check-config accepts the compose Alertmanager config")
