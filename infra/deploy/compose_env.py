"""infra/deploy/compose_env.py — the services' environment and how they find each other: the
LIKES_* settings (against the keys of the binaries' config structs, rust_config.py, and the
variables their scripts read), what each binary needs, URLs, Nginx's upstreams, Prometheus's
targets, Grafana's provisioning variables."""

from __future__ import annotations

import json
import re
from pathlib import Path

from compose_common import (
    INFRA, PROJECT_DIR, ROOT, addr_port, command_of, env_of, fail, ingests, mounts_of, ok, rel, url_host, workers,
)
from rust_config import Keys, env_key, lookup, rust_env_reads, settings, shell_reads


# The config struct each likes binary loads (shared/src/config.rs: defaults, file, LIKES_* with `__`
# for nesting), the loader's own variables, and the image's entrypoint, which reads some more.
BINARY_CONFIGS = {
    "likes-ingest": ("ingest/src/distributed/config.rs", "DistributedConfig"),
    "likes-pipeline": ("pipeline/src/config.rs", "PipelineConfig"),
}
LOADER = "shared/src/config.rs"
IMAGE_ENTRYPOINT = "infra/docker/likes-entrypoint"


def scripts_run(svc: dict) -> list[Path]:
    """The repository's files a service runs: bind-mounted files its entrypoint or command names."""
    mounts = {dst: (PROJECT_DIR / src).resolve() for src, dst, bind in mounts_of(svc) if bind}
    entry = svc.get("entrypoint") or []
    words = (entry.split() if isinstance(entry, str) else [str(w) for w in entry]) + command_of(svc)
    return [mounts[w] for w in words if w in mounts and mounts[w].is_file()]


def provisioning_reads(svc: dict) -> set[str]:
    """The variables the YAML files a service mounts expand (`${NAME}`, as Grafana's provisioning)."""
    names: set[str] = set()
    for src, _, bind in mounts_of(svc):
        path = (PROJECT_DIR / src).resolve()
        if not bind:
            continue
        files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for f in files:
            if f.suffix in (".yml", ".yaml"):
                names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", f.read_text(errors="replace")))
    return names


def check_env(c: dict) -> None:
    services = c["services"]
    keys = Keys(ROOT)
    trees = {b: keys.tree(*where) for b, where in BINARY_CONFIGS.items()}
    loader = rust_env_reads((ROOT / LOADER).read_text())
    entrypoint = shell_reads((ROOT / IMAGE_ENTRYPOINT).read_text())
    seen_vars = 0
    for name, svc in services.items():
        env = env_of(svc)
        cmd = command_of(svc)
        if "build" in svc:
            binary = cmd[0] if cmd else "?"
            tree = trees.get(binary)
            if tree is None:
                fail(f"service {name}: runs {binary}, whose config struct this check does not know")
            readers = f"{binary}'s {BINARY_CONFIGS.get(binary, ('', '?'))[1]}, {LOADER} or {IMAGE_ENTRYPOINT}"
            extra = loader | entrypoint
        else:
            tree = None
            scripts = scripts_run(svc)
            extra = set().union(*(shell_reads(f.read_text(errors="replace")) for f in scripts)) | provisioning_reads(svc)
            readers = ", ".join(rel(f) for f in scripts) or "no script of the repository"
            readers = f"the scripts it runs ({readers}) or the YAML it mounts"
        for var, value in env.items():
            if var.startswith("LIKES_"):
                seen_vars += 1
                why = "" if tree is None else lookup(tree, env_key(var))
                if var not in extra and why is not None:
                    fail(f"service {name}: {var} is read by none of {readers}" + (f" ({why})" if why else ""))
            if var.endswith("_URL"):
                host = url_host(value)
                if host and host not in services and host not in ("localhost", "127.0.0.1"):
                    fail(f"service {name}: {var}={value} names {host!r}, not a service of the file")
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
    counts = ", ".join(f"{BINARY_CONFIGS[b][1]} {len(settings(t))}" for b, t in trees.items())
    ok(f"{seen_vars} LIKES_* settings: each a key of its binary's config struct (read from the Rust source, "
       f"`__` nesting: {counts} settings) or a variable of the entrypoint or start script it runs; every "
       "binary has what it needs; URLs name services of the file")


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
