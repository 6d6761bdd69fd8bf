"""infra/deploy/check_compose.py — what can be checked of infra/compose.yaml and
infra/docker/Dockerfile without a Docker engine (run by infra/deploy/check, in infra/test).

The compose file: it parses (duplicate keys refused, as Compose refuses them), uses only keys this
check knows (a typo is not silently ignored), every long-running service has a health check and the
one-shot `init` has none, every depends_on names a service with a condition that can be met, there
is no dependency cycle, every likes service waits for `init`, every file or directory it mounts or
builds from exists in the repository (the secrets must not: they are git-ignored), named volumes and
secrets are declared, images are pinned (PingCAP's at infra/dev/services' TiDB release, Pulsar's at
infra/dev/pulsar/pom.xml's version), only Nginx is published beyond loopback, the LIKES_* variables
are names the binaries read, no JWT secret is written in it, URLs name services of the file, and
Prometheus scrapes exactly the ingests and workers of the file.

The configs load in the real tools, as the containers see them: each service's bind mounts are
copied to the paths it mounts them at under a temporary root, then `nginx -t` on the Nginx config
that infra/deploy/nginx-start.sh renders from infra/nginx/nginx.conf (upstream host names replaced
by 127.0.0.1, because nginx -t resolves them and `ingest1` resolves only on the compose network),
`promtool check config` on Prometheus's, `amtool check-config` on Alertmanager's.

The Dockerfile: its COPY sources exist in the build context (the repository's files less
.dockerignore's patterns), the context holds the whole Cargo workspace, the packages it builds and
the binaries it copies exist. The image's scripts work: http-probe against a local HTTP server,
likes-entrypoint with a secret file.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import tomllib
import urllib.parse
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = Path(os.environ.get("LIKES_COMPOSE_FILE", INFRA / "compose.yaml")).resolve()
PROJECT_DIR = COMPOSE.parent

problems: list[str] = []
passed: list[str] = []
_mark = 0  # problems found before the current check


def fail(msg: str) -> None:
    problems.append(msg)
    print(f"  FAIL: {msg}", file=sys.stderr)


def ok(msg: str) -> None:
    """A check passed: said only when it found no problem since it began."""
    if len(problems) == _mark:
        passed.append(msg)
        print(f"  ok: {msg}")


def begin() -> None:
    global _mark
    _mark = len(problems)


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------- YAML ---


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (merged `<<` keys may be
    overridden, as YAML says)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

INTERP = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
required_vars: dict[str, str] = {}


def interpolate(value):
    """Compose's variable substitution with an empty environment: defaults apply, `${X:?msg}`
    is recorded as a variable the operator must set."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3) or ""
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            required_vars[name] = arg
            return f"<{name}>"
        return ""

    return INTERP.sub(sub, value)


# ------------------------------------------------------------------ git ---


def git_files() -> set[str]:
    """The repository's files: tracked, plus new ones not ignored (a check run before a commit)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode()
    return {f for f in out.split("\0") if f and (ROOT / f).exists()}


FILES = git_files()


def in_repo(path: Path) -> bool:
    """A file of the repository, or a directory holding some."""
    r = rel(path)
    if r in FILES:
        return True
    prefix = r.rstrip("/") + "/"
    return path.is_dir() and any(f.startswith(prefix) for f in FILES)


def git_ignored(path: Path) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", rel(path)], cwd=ROOT).returncode == 0


def git_tracked(path: Path) -> bool:
    return bool(subprocess.run(["git", "ls-files", rel(path)], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip())


# -------------------------------------------------------------- compose ---

TOP_KEYS = {"name", "services", "volumes", "secrets", "networks", "configs"}
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "volumes", "ports",
    "expose", "depends_on", "healthcheck", "restart", "secrets", "configs", "ulimits",
    "stop_grace_period", "stop_signal", "user", "working_dir", "hostname", "networks", "labels",
    "logging", "deploy", "mem_limit", "memswap_limit", "cpus", "profiles", "init", "tmpfs",
    "read_only", "cap_add", "cap_drop", "security_opt", "sysctls", "pull_policy", "extra_hosts",
    "shm_size", "container_name",
}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
DEPENDS_KEYS = {"condition", "restart", "required"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")
# Published beyond loopback: the public side only. The UIs may be published on 127.0.0.1.
PUBLIC_SERVICES = {"nginx"}
LOOPBACK_UI_SERVICES = {"grafana", "prometheus"}


def load_compose() -> dict:
    try:
        raw = yaml.load(COMPOSE.read_text(), Loader=StrictLoader)
    except yaml.YAMLError as e:
        fail(f"{rel(COMPOSE)} does not parse: {e}")
        return {}
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
        fail(f"{rel(COMPOSE)}: no services mapping")
        return {}
    ok(f"{rel(COMPOSE)} parses ({len(raw['services'])} services, no duplicate keys)")
    return interpolate(raw)


def env_of(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_of(svc: dict) -> list[str]:
    cmd = svc.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def mounts_of(svc: dict) -> list[tuple[str, str, bool]]:
    """(source, target, is_bind) of each volume of a service."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            src, dst = str(v.get("source", "")), str(v.get("target", ""))
            bind = v.get("type") == "bind"
        else:
            parts = str(v).split(":")
            src, dst = (parts[0], parts[1]) if len(parts) >= 2 else ("", parts[0])
            bind = src.startswith((".", "/", "~"))
        out.append((src, dst, bind))
    return out


def is_job(svc: dict) -> bool:
    return str(svc.get("restart", "no")) == "no" and "healthcheck" not in svc


def check_structure(c: dict) -> None:
    services = c["services"]
    for key in c:
        if key not in TOP_KEYS and not str(key).startswith("x-"):
            fail(f"top-level key {key!r} is not a compose key this check knows")
    for name, svc in services.items():
        for key in svc:
            if key not in SERVICE_KEYS:
                fail(f"service {name}: key {key!r} is not a compose service key this check knows")
        if "image" not in svc and "build" not in svc:
            fail(f"service {name}: neither image nor build")
        hc = svc.get("healthcheck")
        if hc is None:
            if not is_job(svc):
                fail(f"service {name}: no healthcheck (only a one-shot job with restart: \"no\" may go without)")
        else:
            for key in hc:
                if key not in HEALTHCHECK_KEYS:
                    fail(f"service {name}: healthcheck key {key!r} unknown")
            test = hc.get("test")
            if hc.get("disable"):
                fail(f"service {name}: healthcheck disabled")
            if not (isinstance(test, list) and len(test) >= 2 and test[0] in ("CMD", "CMD-SHELL")) and not (
                isinstance(test, str) and test.strip()
            ):
                fail(f"service {name}: healthcheck test must be [CMD, ...], [CMD-SHELL, ...] or a command")
            for key in ("interval", "timeout", "start_period", "start_interval"):
                if key in hc and not DURATION.match(str(hc[key])):
                    fail(f"service {name}: healthcheck {key} {hc[key]!r} is not a duration")
            if "retries" in hc and not (isinstance(hc["retries"], int) and hc["retries"] > 0):
                fail(f"service {name}: healthcheck retries must be a positive integer")
    jobs = sorted(n for n, s in services.items() if is_job(s))
    ok(f"every service has a health check but the one-shot job(s) {', '.join(jobs) or '(none)'}")


def check_depends(c: dict) -> None:
    services = c["services"]
    graph: dict[str, list[str]] = {}
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            fail(f"service {name}: depends_on as a list waits for nothing but the start; give conditions")
            deps = {d: {} for d in deps}
        graph[name] = list(deps)
        for dep, spec in deps.items():
            spec = spec or {}
            for key in spec:
                if key not in DEPENDS_KEYS:
                    fail(f"service {name}: depends_on {dep}: key {key!r} unknown")
            if dep not in services:
                fail(f"service {name}: depends_on names {dep!r}, which is not a service")
                continue
            cond = spec.get("condition", "service_started")
            if cond not in CONDITIONS:
                fail(f"service {name}: depends_on {dep}: condition {cond!r} is not one of {sorted(CONDITIONS)}")
            elif cond == "service_healthy" and "healthcheck" not in services[dep]:
                fail(f"service {name}: waits for {dep} to be healthy, which has no healthcheck")
            elif cond == "service_completed_successfully" and not is_job(services[dep]):
                fail(f"service {name}: waits for {dep} to complete, which is not a one-shot job")
            elif cond == "service_started":
                fail(f"service {name}: depends_on {dep} with service_started; use service_healthy")
    # Cycles.
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 1:
            fail(f"depends_on cycle: {' -> '.join(path + [n])}")
            return
        if state.get(n) == 2:
            return
        state[n] = 1
        for d in graph.get(n, []):
            if d in services:
                visit(d, path + [n])
        state[n] = 2

    for n in services:
        visit(n, [])
    # Every likes service but the job waits for the job.
    likes = [n for n, s in services.items() if "build" in s]
    inits = [n for n in likes if is_job(services[n])]
    for n in likes:
        if n in inits:
            continue
        deps = services[n].get("depends_on") or {}
        if not any(
            i in deps and (deps[i] or {}).get("condition") == "service_completed_successfully" for i in inits
        ):
            fail(f"service {n}: does not wait for the init job ({', '.join(inits) or 'none'}) to complete")
    ok("every depends_on names a service with a condition it can meet; no cycle; the likes services wait for init")


def check_files(c: dict) -> None:
    services = c["services"]
    declared_volumes = set((c.get("volumes") or {}).keys())
    used_volumes = set()
    binds = 0
    for name, svc in services.items():
        for src, dst, bind in mounts_of(svc):
            if not dst.startswith("/"):
                fail(f"service {name}: volume target {dst!r} is not an absolute path")
            if bind:
                path = (PROJECT_DIR / src).resolve()
                binds += 1
                if not str(path).startswith(str(ROOT) + os.sep):
                    fail(f"service {name}: mounts {src}, outside the repository")
                elif not path.exists():
                    fail(f"service {name}: mounts {src} ({rel(path)}), which does not exist")
                elif not in_repo(path):
                    fail(f"service {name}: mounts {src} ({rel(path)}), which is not a file of the repository")
            else:
                used_volumes.add(src)
                if src not in declared_volumes:
                    fail(f"service {name}: named volume {src!r} is not declared under volumes:")
        build = svc.get("build")
        if build is not None:
            ctx = (PROJECT_DIR / (build if isinstance(build, str) else build.get("context", "."))).resolve()
            dockerfile = ctx / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            if not ctx.is_dir():
                fail(f"service {name}: build context {rel(ctx)} is not a directory")
            if not dockerfile.is_file() or not in_repo(dockerfile):
                fail(f"service {name}: Dockerfile {rel(dockerfile)} is not a file of the repository")
        # Healthcheck commands that run a file mounted into the container.
        test = (svc.get("healthcheck") or {}).get("test") or []
        targets = {dst for _, dst, _ in mounts_of(svc)}
        for arg in test[1:] if isinstance(test, list) else []:
            if str(arg).startswith("/etc/likes/") and str(arg) not in targets:
                fail(f"service {name}: its health check runs {arg}, which it does not mount")
    for v in sorted(declared_volumes - used_volumes):
        fail(f"volume {v!r} is declared but no service uses it")
    # Secrets: declared, and files the operator creates, never committed.
    declared_secrets = c.get("secrets") or {}
    for name, svc in services.items():
        for s in svc.get("secrets") or []:
            sname = s if isinstance(s, str) else s.get("source")
            if sname not in declared_secrets:
                fail(f"service {name}: secret {sname!r} is not declared under secrets:")
    for sname, spec in declared_secrets.items():
        if "file" not in spec:
            fail(f"secret {sname}: no file (this deployment keeps secrets in operator-made files)")
            continue
        path = (PROJECT_DIR / spec["file"]).resolve()
        if git_tracked(path):
            fail(f"secret {sname}: {rel(path)} is committed; secrets must stay out of git")
        elif not git_ignored(path):
            fail(f"secret {sname}: {rel(path)} is not git-ignored; an operator could commit it")
    ok(f"{binds} bind mounts and every build context/Dockerfile exist in the repository; "
       f"{len(declared_volumes)} named volumes and {len(declared_secrets)} secrets declared and used, "
       "secret files git-ignored and not committed")


def tidb_release() -> str:
    m = re.search(r"^TIDB_RELEASE=(\S+)", (INFRA / "dev/services").read_text(), re.M)
    return m.group(1) if m else "?"


def pulsar_version() -> str:
    m = re.search(r"<pulsar.version>([^<]+)</pulsar.version>", (INFRA / "dev/pulsar/pom.xml").read_text())
    return m.group(1) if m else "?"


def check_images(c: dict) -> None:
    tidb, pulsar = tidb_release(), pulsar_version()
    for name, svc in c["services"].items():
        image = str(svc.get("image", ""))
        if "build" in svc:
            continue
        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        if not tag or tag == "latest":
            fail(f"service {name}: image {image!r} is not pinned to a version")
        if repo.startswith("pingcap/") and tag != tidb:
            fail(f"service {name}: {image} differs from infra/dev/services' TiDB {tidb}")
        if repo == "apachepulsar/pulsar" and tag != pulsar:
            fail(f"service {name}: {image} differs from infra/dev/pulsar/pom.xml's Pulsar {pulsar}")
    ok(f"images pinned; PingCAP at {tidb}, Pulsar at {pulsar}")


def check_ports(c: dict) -> None:
    for name, svc in c["services"].items():
        for p in svc.get("ports") or []:
            spec = str(p.get("published", "")) if isinstance(p, dict) else str(p)
            host_ip = p.get("host_ip", "") if isinstance(p, dict) else (
                spec.split(":")[0] if spec.count(":") == 2 else "")
            if name in PUBLIC_SERVICES:
                continue
            if name in LOOPBACK_UI_SERVICES and host_ip == "127.0.0.1":
                continue
            fail(f"service {name}: publishes {spec!r}; only {sorted(PUBLIC_SERVICES)} may, "
                 f"and {sorted(LOOPBACK_UI_SERVICES)} on 127.0.0.1")
    ok("only Nginx is published beyond loopback")


def source_corpus() -> str:
    parts = []
    for d in ("shared/src", "ingest/src", "pipeline/src", "sink/src", "src"):
        for f in sorted((ROOT / d).rglob("*.rs")):
            parts.append(f.read_text(errors="replace"))
    for f in ("README.md", "infra/docker/likes-entrypoint", "infra/deploy/nginx-start.sh"):
        parts.append((ROOT / f).read_text(errors="replace"))
    for f in sorted((ROOT / "infra/grafana/provisioning").rglob("*.y*ml")):
        parts.append(f.read_text(errors="replace"))
    return "\n".join(parts)


def url_host(value: str) -> str | None:
    u = urllib.parse.urlparse(value)
    return u.hostname if u.scheme and u.netloc else None


def check_env(c: dict) -> None:
    services = c["services"]
    corpus = source_corpus()
    seen_vars = 0
    for name, svc in services.items():
        env = env_of(svc)
        for var, value in env.items():
            if var.startswith("LIKES_"):
                seen_vars += 1
                if not re.search(rf"\b{re.escape(var)}\b", corpus):
                    fail(f"service {name}: {var} is read by no binary or script (a typo?)")
            if var.endswith("_URL"):
                host = url_host(value)
                if host and host not in services and host not in ("localhost", "127.0.0.1"):
                    fail(f"service {name}: {var}={value} names {host!r}, not a service of the file")
            if var == "LIKES_AUTH__JWT_SECRET" and not value.startswith("<"):
                fail(f"service {name}: LIKES_AUTH__JWT_SECRET is written in the file; use a secret")
        if var_file := env.get("LIKES_JWT_SECRET_FILE"):
            mine = {s if isinstance(s, str) else s.get("source") for s in svc.get("secrets") or []}
            if not any(var_file == f"/run/secrets/{s}" for s in mine):
                fail(f"service {name}: LIKES_JWT_SECRET_FILE={var_file} is none of its secrets")
        cmd = command_of(svc)
        needs = []
        if cmd[:1] == ["likes-ingest"]:
            needs = ["LIKES_REDIS_URL", "LIKES_PULSAR_URL", "LIKES_PULSAR_ADMIN_URL", "LIKES_DATABASE_URL"]
            if "LIKES_AUTH__JWT_SECRET" not in env and "LIKES_JWT_SECRET_FILE" not in env:
                fail(f"service {name}: likes-ingest without LIKES_AUTH__JWT_SECRET or LIKES_JWT_SECRET_FILE")
        elif cmd[:2] == ["likes-pipeline", "run"]:
            needs = ["LIKES_PULSAR_URL", "LIKES_PULSAR_ADMIN_URL", "LIKES_DATABASE_URL", "LIKES_ADMIN_ADDR",
                     "LIKES_CONSUMER_NAME"]
        elif cmd[:2] == ["likes-pipeline", "init"]:
            needs = ["LIKES_PULSAR_ADMIN_URL", "LIKES_DATABASE_URL"]
        elif "build" in svc:
            fail(f"service {name}: runs {cmd}, which this check does not know")
        for n in needs:
            if not env.get(n):
                fail(f"service {name}: {cmd[0]} needs {n}")
    for var, label in (("LIKES_INSTANCE_ID", "ingest instance ids"), ("LIKES_CONSUMER_NAME", "consumer names")):
        values = [env_of(s)[var] for s in services.values() if var in env_of(s)]
        if len(values) != len(set(values)):
            fail(f"{label} repeat: {values}")
    ok(f"{seen_vars} LIKES_* settings are names the binaries or scripts read; every binary has what it "
       "needs; URLs name services of the file; no JWT secret in the file")


def ingests(c: dict) -> list[str]:
    return sorted(n for n, s in c["services"].items() if command_of(s)[:1] == ["likes-ingest"])


def workers(c: dict) -> list[str]:
    return sorted(n for n, s in c["services"].items() if command_of(s)[:2] == ["likes-pipeline", "run"])


def addr_port(value: str, default: str) -> str:
    return (value or default).rsplit(":", 1)[-1]


def check_wiring(c: dict) -> None:
    services = c["services"]
    ing, wrk = ingests(c), workers(c)
    nginx = services.get("nginx")
    if nginx is None:
        fail("no nginx service")
    else:
        env = env_of(nginx)
        upstreams = env.get("LIKES_NGINX_UPSTREAMS", "").split()
        want = sorted(f"{n}:{addr_port(env_of(services[n]).get('LIKES_HTTP_ADDR', ''), '8080')}" for n in ing)
        if sorted(upstreams) != want:
            fail(f"nginx: LIKES_NGINX_UPSTREAMS {upstreams} are not the ingests {want}")
        deps = nginx.get("depends_on") or {}
        for n in ing:
            if (deps.get(n) or {}).get("condition") != "service_healthy":
                fail(f"nginx: does not wait for {n} to be healthy")
        limits = {env_of(services[n]).get("LIKES_BODY_LIMIT_BYTES", "16384") for n in ing}
        if {env.get("LIKES_BODY_LIMIT_BYTES", "16384")} != limits:
            fail(f"nginx: LIKES_BODY_LIMIT_BYTES {env.get('LIKES_BODY_LIMIT_BYTES')} differs from the ingests' {limits}")
    # Prometheus: the targets it is given by file_sd are the services of this file.
    prom = services.get("prometheus")
    if prom is None:
        fail("no prometheus service")
        return
    targets_dir = next(
        ((PROJECT_DIR / src).resolve() for src, dst, bind in mounts_of(prom) if bind and dst == "/etc/prometheus/targets"),
        None,
    )
    if targets_dir is None or not targets_dir.is_dir():
        fail("prometheus: no targets directory mounted at /etc/prometheus/targets")
        return
    expected = {
        "likes-ingest": {f"{n}:{addr_port(env_of(services[n]).get('LIKES_HTTP_ADDR', ''), '8080')}" for n in ing},
        "likes-pipeline": {f"{n}:{addr_port(env_of(services[n]).get('LIKES_ADMIN_ADDR', ''), '9464')}" for n in wrk},
    }
    for f in sorted(targets_dir.glob("*.json")):
        groups = json.loads(f.read_text())
        hosts = {t for g in groups for t in g.get("targets", [])}
        for t in hosts:
            host = t.rsplit(":", 1)[0]
            if host not in services and host != "localhost":
                fail(f"{rel(f)}: target {t} is not a service of the file")
        if f.stem in expected and hosts != expected[f.stem]:
            fail(f"{rel(f)}: targets {sorted(hosts)}, the file runs {sorted(expected[f.stem])}")
    # Grafana: what infra/grafana/provisioning expands.
    graf = services.get("grafana")
    if graf is not None:
        env = env_of(graf)
        prov = "\n".join(p.read_text() for p in (INFRA / "grafana/provisioning").rglob("*.y*ml"))
        for var in sorted(set(re.findall(r"\$\{([A-Z_]+)\}", prov))):
            if not env.get(var):
                fail(f"grafana: infra/grafana/provisioning expands ${{{var}}}, which the service does not set")
        dash_mount = [dst for src, dst, bind in mounts_of(graf)
                      if bind and (PROJECT_DIR / src).resolve() == INFRA / "grafana/dashboards"]
        if dash_mount != [env.get("LIKES_DASHBOARDS_DIR")]:
            fail(f"grafana: LIKES_DASHBOARDS_DIR {env.get('LIKES_DASHBOARDS_DIR')} is not where "
                 f"infra/grafana/dashboards is mounted ({dash_mount})")
    ok(f"Nginx fronts the ingests {ing}; Prometheus scrapes them and the workers {wrk}; Grafana gets "
       "the variables its provisioning expands and the dashboards where it looks")


# ------------------------------------------------------- configs in tools ---


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


# ------------------------------------------------------------ Dockerfile ---


def dockerignore_patterns() -> list[re.Pattern]:
    path = ROOT / ".dockerignore"
    if not path.exists():
        fail(".dockerignore is missing at the repository root (the build context)")
        return []
    pats = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            fail(f".dockerignore: exceptions ({line}) are not supported by this check")
            continue
        line = line.strip("/")
        rx, i = "", 0
        while i < len(line):
            if line.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif line.startswith("**", i):
                rx += ".*"
                i += 2
            elif line[i] == "*":
                rx += "[^/]*"
                i += 1
            elif line[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(line[i])
                i += 1
        # A matched directory excludes everything under it.
        pats.append(re.compile(rf"^{rx}(?:/.*)?$"))
    return pats


def check_dockerfile(c: dict) -> None:
    builds = {(PROJECT_DIR / (s["build"]["context"])).resolve(): s["build"].get("dockerfile", "Dockerfile")
              for s in c["services"].values() if isinstance(s.get("build"), dict)}
    if not builds:
        fail("no service builds the likes image")
        return
    pats = dockerignore_patterns()
    for ctx, dockerfile in builds.items():
        if ctx != ROOT:
            fail(f"the build context is {rel(ctx)}, not the repository root (.dockerignore is read from there)")
            continue
        context = {f for f in FILES if not any(p.match(f) for p in pats)}
        for must in (".git", "target"):
            if any(f == must or f.startswith(must + "/") for f in context) or not any(p.match(must) for p in pats):
                fail(f".dockerignore does not exclude {must}")
        text = (ctx / dockerfile).read_text()
        lines = re.sub(r"\\\n", " ", text).splitlines()
        copies = 0
        for line in lines:
            words = line.split()
            if not words or words[0].upper() not in ("COPY", "ADD"):
                continue
            args = [w for w in words[1:] if not w.startswith("--")]
            if any(w.startswith("--from=") for w in words[1:]):
                continue
            for src in args[:-1]:
                copies += 1
                s = src.rstrip("/")
                if s in (".", ""):
                    if not context:
                        fail(f"{dockerfile}: COPY . with an empty context")
                elif s not in context and not any(f.startswith(s + "/") for f in context):
                    fail(f"{dockerfile}: COPY source {src} is not in the build context "
                         f"({'excluded by .dockerignore' if (ctx / s).exists() else 'no such file'})")
        # The whole workspace is in the context.
        manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
        members = manifest["workspace"]["members"]
        packages, bins = {}, {}
        for m in members:
            mf = "Cargo.toml" if m == "." else f"{m}/Cargo.toml"
            if mf not in context:
                fail(f"workspace member {m}: {mf} is not in the build context")
                continue
            pm = tomllib.loads((ROOT / mf).read_text())
            pname = pm["package"]["name"]
            packages[pname] = m
            bins[pname] = {b["name"] for b in pm.get("bin", [])}
        if "Cargo.lock" not in context:
            fail("Cargo.lock is not in the build context (the build is --locked)")
        for web in ("ingest/web/index.html", "ingest/src/openapi.json"):
            if (ROOT / web).exists() and web not in context:
                fail(f"{web} (embedded in the binary) is not in the build context")
        build = re.search(r"cargo build ([^&]*)", " ".join(lines))
        pkgs = re.findall(r"-p\s+(\S+)", build.group(1)) if build else []
        if not pkgs:
            fail(f"{dockerfile}: no `cargo build -p ...`")
        for p in pkgs:
            if p not in packages:
                fail(f"{dockerfile}: builds -p {p}, which is no package of the workspace")
        loop = re.search(r"for bin in ([^;]+);", " ".join(lines))
        for b in (loop.group(1).split() if loop else []):
            if not any(b in bins.get(p, set()) for p in pkgs):
                fail(f"{dockerfile}: copies binary {b}, which none of {pkgs} builds")
        # The health check tool of the likes services is installed in the image.
        for name, svc in c["services"].items():
            if "build" in svc:
                test = (svc.get("healthcheck") or {}).get("test") or []
                if len(test) > 1 and test[0] == "CMD" and not re.search(rf"\b{re.escape(test[1])}\b", text):
                    fail(f"service {name}: its health check runs {test[1]}, which {dockerfile} does not install")
        ok(f"{dockerfile}: {copies} COPY sources in the context ({len(context)} files after .dockerignore), "
           f"the {len(members)} workspace members too; builds {', '.join(pkgs)}")


# ------------------------------------------------------------- scripts ---


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


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)
    print(f"[deploy/check] {rel(COMPOSE)}, infra/docker/Dockerfile")
    c = load_compose()
    if c:
        with tempfile.TemporaryDirectory(prefix="likes-deploy-check-") as tmp:
            for check in (check_structure, check_depends, check_files, check_images, check_ports, check_env,
                          check_wiring, check_dockerfile, check_tools, check_scripts):
                begin()
                try:
                    if check in (check_tools, check_scripts):
                        check(c, Path(tmp)) if check is check_tools else check(Path(tmp))
                    else:
                        check(c)
                except Exception as e:  # a malformed file must fail the check, not crash it
                    fail(f"{check.__name__}: {type(e).__name__}: {e}")
    if required_vars:
        print(f"  (variables the operator must set: {', '.join(sorted(required_vars))})")
    print(f"[deploy/check] {len(passed)} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
