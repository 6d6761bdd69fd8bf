"""infra/deploy/compose_structure.py — the compose file's shape: known keys, health checks,
depends_on, mounted and built files, secrets, image pins, published ports."""

from __future__ import annotations

import os
import re

from compose_common import (
    INFRA, PROJECT_DIR, ROOT, fail, git_ignored, git_tracked, in_repo, is_job, mounts_of, ok, rel,
)


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
