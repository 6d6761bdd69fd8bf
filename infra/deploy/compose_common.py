"""infra/deploy/compose_common.py — what the checks of infra/deploy/check share: the paths, the
report (fail/ok), the compose file as Compose reads it (duplicate keys refused, variables
substituted), the repository's files as git sees them, and accessors of a compose service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


def url_host(value: str) -> str | None:
    u = urllib.parse.urlparse(value)
    return u.hostname if u.scheme and u.netloc else None


def ingests(c: dict) -> list[str]:
    return sorted(n for n, s in c["services"].items() if command_of(s)[:1] == ["likes-ingest"])


def workers(c: dict) -> list[str]:
    return sorted(n for n, s in c["services"].items() if command_of(s)[:2] == ["likes-pipeline", "run"])


def addr_port(value: str, default: str) -> str:
    return (value or default).rsplit(":", 1)[-1]
