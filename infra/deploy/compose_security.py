"""infra/deploy/compose_security.py — who can reach whom, and with what credentials.

Networks: every service names its networks (none is left on Compose's `default`, which every such
service shares); every address a service is given (a URL, Nginx's upstreams, Prometheus's
targets, an address in its command) is on a network they share; a front or observability
service (Nginx, Prometheus, Alertmanager, Grafana) shares a network only with what it names or
what names it, so Nginx reaches the ingests alone and Grafana Prometheus alone; no backend (Redis,
PD, TiKV, TiDB, Pulsar, the workers, init) is on a network of a published service; the networks
holding backends are internal; a service publishing a port joins a non-internal network first.

Credentials: no password in the file (a URL's user info, a literal PASSWORD/SECRET/TOKEN setting,
--requirepass, IDENTIFIED BY) nor in a committed file it mounts; every /run/secrets/ path a
service is given is one of its secrets; the likes services reach TiDB as a user that is not root
and Redis with a password, each from a secret file that the server gets too (TiDB's init template
creates that user; root gets a password as well; Redis runs its start script); Prometheus runs
without --web.enable-lifecycle.
"""

from __future__ import annotations

import json
import re
import urllib.parse

from compose_common import PROJECT_DIR, command_of, env_of, fail, ingests, mounts_of, ok, rel
from rust_config import shell_reads

BACKEND_IMAGES = ("redis", "pingcap/", "apachepulsar/")
OBSERVABILITY_IMAGES = ("prom/", "grafana/")
NETWORK_KEYS = {"driver", "driver_opts", "internal", "attachable", "ipam", "external", "name", "labels",
                "enable_ipv6"}
SERVICE_NETWORK_KEYS = {"aliases", "ipv4_address", "ipv6_address", "link_local_ips", "mac_address",
                        "driver_opts", "priority"}
HOST_PORT = re.compile(r"(?:^|[=/@,\s])([a-z][a-z0-9_-]*):\d+")
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s@:]*:[^/\s@]+@")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|_PASS$")
LITERAL_PASSWORD = re.compile(r"--requirepass\b|--pass(?:word)?\b|\bIDENTIFIED BY\b|\bredis-cli\b.*\s-a\s", re.I)
# The credentials the likes services get: URL, the file the entrypoint reads its password from.
CREDENTIALS = (("LIKES_DATABASE_URL", "LIKES_DATABASE_PASSWORD_FILE"), ("LIKES_REDIS_URL", "LIKES_REDIS_PASSWORD_FILE"))


def image_repo(svc: dict) -> str:
    image = str(svc.get("image", ""))
    return image.rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image


def is_backend(name: str, svc: dict, c: dict) -> bool:
    if image_repo(svc).startswith(BACKEND_IMAGES):
        return True
    return "build" in svc and name not in ingests(c)


def networks_of(svc: dict) -> dict[str, dict]:
    nets = svc.get("networks")
    if nets is None:
        return {"default": {}}
    if isinstance(nets, list):
        return {str(n): {} for n in nets}
    return {str(n): (v or {}) for n, v in nets.items()}


def published(svc: dict) -> bool:
    return bool(svc.get("ports"))


def secrets_of(svc: dict) -> set[str]:
    return {s if isinstance(s, str) else s.get("source") for s in svc.get("secrets") or []}


def prometheus_targets(c: dict) -> dict[str, set[str]]:
    """Prometheus services -> the hosts of their file_sd targets."""
    out = {}
    for name, svc in c["services"].items():
        if not image_repo(svc).startswith("prom/prometheus"):
            continue
        hosts = set()
        for src, dst, bind in mounts_of(svc):
            path = (PROJECT_DIR / src).resolve()
            if bind and path.is_dir() and dst.rstrip("/").endswith("/targets"):
                for f in sorted(path.glob("*.json")):
                    hosts |= {t.rsplit(":", 1)[0] for g in json.loads(f.read_text()) for t in g.get("targets", [])}
        out[name] = hosts
    return out


def references(c: dict) -> list[tuple[str, str, str]]:
    """(service, service it connects to, where it is said) for every address a service is given."""
    services = c["services"]
    refs = []
    for name, svc in services.items():
        for var, value in env_of(svc).items():
            for word in value.split():
                host = urllib.parse.urlparse(word).hostname if "://" in word else (
                    word.rsplit(":", 1)[0] if re.fullmatch(r"[a-z][a-z0-9_-]*:\d+", word) else None)
                if host in services and host != name:
                    refs.append((name, host, var))
        for arg in command_of(svc):
            for host in HOST_PORT.findall(arg):
                if host in services and host != name:
                    refs.append((name, host, f"command {arg}"))
    for prom, hosts in prometheus_targets(c).items():
        for host in sorted(hosts):
            if host in services and host != prom:
                refs.append((prom, host, "its file_sd targets"))
    return refs


def check_networks(c: dict) -> None:
    services = c["services"]
    declared = c.get("networks") or {}
    for net, spec in declared.items():
        for key in spec or {}:
            if key not in NETWORK_KEYS:
                fail(f"network {net}: key {key!r} is not a compose network key this check knows")
    nets = {}
    for name, svc in services.items():
        nets[name] = networks_of(svc)
        if svc.get("networks") is None:
            fail(f"service {name}: names no network, so it is on `default` with every service that names none")
        for net, spec in nets[name].items():
            if net != "default" and net not in declared:
                fail(f"service {name}: network {net!r} is not declared under networks:")
            for key in spec:
                if key not in SERVICE_NETWORK_KEYS:
                    fail(f"service {name}: network {net}: key {key!r} unknown")
    used = set().union(*(set(n) for n in nets.values())) if nets else set()
    for net in sorted(set(declared) - used):
        fail(f"network {net!r} is declared but no service joins it")

    def internal(net: str) -> bool:
        return bool((declared.get(net) or {}).get("internal"))

    def peers(name: str) -> set[str]:
        return {o for o in services if o != name and set(nets[o]) & set(nets[name])}

    refs = references(c)
    for src, dst, where in refs:
        if not set(nets[src]) & set(nets[dst]):
            fail(f"service {src}: connects to {dst} ({where}) but they share no network")
    backends = {n for n, s in services.items() if is_backend(n, s, c)}
    public = {n for n, s in services.items() if published(s) and not image_repo(s).startswith(OBSERVABILITY_IMAGES)}
    # The public side: no backend on a network of a published service.
    for p in sorted(public):
        for net in sorted(nets[p]):
            on = sorted(b for b in backends if net in nets[b])
            if on:
                fail(f"network {net}: {', '.join(on)} on the network of {p}, which is published; "
                     f"a compromised {p} would reach them")
    # Front and observability services reach what they name, or what names them, and nothing else.
    named = {n: {d for s, d, _ in refs if s == n} | {s for s, d, _ in refs if d == n} for n in services}
    fronts = sorted(n for n, s in services.items()
                    if n in public or image_repo(s).startswith(OBSERVABILITY_IMAGES))
    for f in fronts:
        extra = sorted(peers(f) - named[f])
        if extra:
            fail(f"service {f}: shares a network with {', '.join(extra)}, which it has no business with")
    for net in sorted(used - {"default"}):
        on = sorted(b for b in backends if net in nets[b])
        if on and not internal(net):
            fail(f"network {net}: holds {', '.join(on)} and is not internal: true (a route out of the host)")
    for name, svc in services.items():
        if published(svc) and nets[name]:
            first = sorted(nets[name], key=lambda n: (-int(nets[name][n].get("priority", 0)), n))[0]
            if internal(first):
                fail(f"service {name}: publishes a port but joins the internal network {first} first; "
                     "Docker publishes nothing through an internal network (give another one a priority)")
    view = "; ".join(f"{f} reaches {', '.join(sorted(peers(f)))}" for f in fronts)
    ok(f"{len(declared)} networks, named by every service; every address it is given shares a network "
       f"with it; {view}; no backend on a published service's network, theirs internal")


def strings(value, path: str = ""):
    """(path, string) of every string in a compose value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def check_credentials(c: dict) -> None:
    services = c["services"]
    # No password written in the file.
    for name, svc in services.items():
        for path, value in strings(svc):
            if URL_WITH_PASSWORD.search(value):
                fail(f"service {name}: {path} holds a URL with a password; give it in a secret file")
            if LITERAL_PASSWORD.search(value) and "/run/secrets/" not in value:
                fail(f"service {name}: {path} = {value!r} looks like a password given in the file")
        for var, value in env_of(svc).items():
            if SECRET_NAME.search(var) and not var.endswith("FILE") and value and not value.startswith("<"):
                fail(f"service {name}: {var} is written in the file; use a secret (a *_FILE variable)")
            if value.startswith("/run/secrets/") and value.split("/")[3] not in secrets_of(svc):
                fail(f"service {name}: {var}={value} is none of its secrets")
        # Committed files it mounts.
        for src, _, bind in mounts_of(svc):
            path = (PROJECT_DIR / src).resolve()
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if bind and path.is_dir() else []
            for f in files if bind else []:
                text = f.read_text(errors="replace")
                for m in re.finditer(r"IDENTIFIED BY\s+'([^']*)'", text, re.I):
                    if not re.fullmatch(r"@[A-Z_]+@", m.group(1)):
                        fail(f"{rel(f)} (mounted by {name}): a password written in it (IDENTIFIED BY '...')")
                if re.search(r"^\s*requirepass\s+\S", text, re.M):
                    fail(f"{rel(f)} (mounted by {name}): a requirepass written in it")
    # The likes services' credentials, and the servers that check them (each problem said once).
    said: set[str] = set()

    def once(msg: str) -> None:
        if msg not in said:
            said.add(msg)
            fail(msg)

    pairs = 0
    for name, svc in services.items():
        if "build" not in svc:
            continue
        env = env_of(svc)
        for url_var, file_var in CREDENTIALS:
            if url_var not in env:
                continue
            pairs += 1
            u = urllib.parse.urlparse(env[url_var])
            if url_var == "LIKES_DATABASE_URL" and u.username in (None, "", "root"):
                fail(f"service {name}: {url_var} connects as {u.username or 'no user'!r}; use the likes user")
            secret_path = env.get(file_var, "")
            if not secret_path.startswith("/run/secrets/"):
                fail(f"service {name}: {url_var} without {file_var} naming a secret: no password")
                continue
            secret = secret_path.split("/")[3]
            server = services.get(u.hostname or "")
            if server is None:
                continue
            if secret not in secrets_of(server) or env_of(server).get(file_var) != secret_path:
                once(f"service {u.hostname}: does not get the secret {secret} as {file_var}, which "
                     f"{name} connects with ({url_var})")
            entry = [str(a) for a in server.get("entrypoint") or []]
            scripts = [(PROJECT_DIR / src).resolve() for src, dst, bind in mounts_of(server) if bind and dst in entry]
            if not any(file_var in shell_reads(p.read_text()) for p in scripts if p.is_file()):
                once(f"service {u.hostname}: its entrypoint runs no script of the repository that reads {file_var}")
            if url_var == "LIKES_DATABASE_URL":
                check_tidb_init(u.hostname, server, u.username or "", once)
            if url_var == "LIKES_REDIS_URL":
                test = " ".join(str(t) for t in (server.get("healthcheck") or {}).get("test") or [])
                if secret_path not in test:
                    once(f"service {u.hostname}: its health check does not authenticate with {secret_path}")
    if pairs == 0:
        fail("no likes service connects to TiDB or Redis: nothing to check the credentials of")
    for name, svc in services.items():
        if "--web.enable-lifecycle" in command_of(svc):
            fail(f"service {name}: --web.enable-lifecycle lets whatever reaches its port stop or reload it")
    ok("no password in the file or the files it mounts; every /run/secrets/ path is a secret of its service; "
       "the likes services reach TiDB as a user that is not root and Redis with a password, from secrets their "
       "servers get too; TiDB's init creates that user and gives root a password; no --web.enable-lifecycle")


def check_tidb_init(name: str, svc: dict, user: str, fail=fail) -> None:
    """The TiDB service creates `user` with a password from a placeholder, and gives root one."""
    sql = [(PROJECT_DIR / src).resolve() for src, _, bind in mounts_of(svc) if bind and src.endswith(".sql")]
    text = "\n".join(p.read_text() for p in sql if p.is_file())
    if not re.search(rf"CREATE USER (?:IF NOT EXISTS )?'{re.escape(user)}'@'%' IDENTIFIED BY '@[A-Z_]+@'", text):
        fail(f"service {name}: its init SQL ({', '.join(rel(p) for p in sql) or 'none mounted'}) does not "
             f"create the user {user!r} with a password")
    if not re.search(r"GRANT .+ ON `?likes`?\.\* TO '" + re.escape(user) + "'", text):
        fail(f"service {name}: its init SQL grants {user!r} nothing on the database likes")
    if not re.search(r"ALTER USER 'root'@'%' IDENTIFIED BY '@[A-Z_]+@'", text):
        fail(f"service {name}: its init SQL leaves root without a password")
