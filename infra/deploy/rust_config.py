"""infra/deploy/rust_config.py — the settings a likes binary reads, from its Rust config struct.

The binaries load one typed struct (shared/src/config.rs): its defaults, then a TOML file, then
the environment, where `LIKES_HTTP_ADDR` sets the key `http_addr` (the prefix dropped, the rest
lowercased) and `__` separates nested keys (`LIKES_AUTH__JWT_SECRET` sets `auth.jwt_secret`).
This module reads the struct's source, never builds it: `pub struct NAME { pub field: Type, ... }`
with `#[derive(... Deserialize ...)]`, a field's type followed to the struct of that name in the
workspace (through Option/Box), `#[serde(flatten)]` fields' keys lifted into their parent,
`rename`, `alias` and `skip` honoured. What it cannot read (a struct-wide rename_all, a type name
two crates define) is an error, not a guess.
"""

from __future__ import annotations

import re
from pathlib import Path

SOURCE_DIRS = ("shared/src", "ingest/src", "pipeline/src", "sink/src", "src")
STRUCT = re.compile(r"^[ \t]*pub struct (\w+)\s*\{", re.M)
FIELD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:r#)?(\w+)\s*:\s*(.+?)\s*,?\s*$")
WRAPPERS = ("Option", "Box")


class ConfigSourceError(Exception):
    pass


class Struct:
    def __init__(self, name: str, path: Path, attrs: list[str], body: str):
        self.name, self.path, self.attrs, self.body = name, path, attrs, body

    @property
    def deserializable(self) -> bool:
        return any("derive" in a and "Deserialize" in a for a in self.attrs)


def _attrs_before(text: str, start: int) -> list[str]:
    """The `#[...]` lines right above position start (doc comments skipped)."""
    lines = text[:start].split("\n")[:-1]
    attrs = []
    for line in reversed(lines):
        s = line.strip()
        if s.startswith("#["):
            attrs.append(s)
        elif not s.startswith("///"):
            break
    return attrs


def _body(text: str, open_brace: int) -> str:
    depth = 0
    for i in range(open_brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1:i]
    raise ConfigSourceError(f"unbalanced braces after offset {open_brace}")


def load_structs(root: Path) -> dict[str, list[Struct]]:
    structs: dict[str, list[Struct]] = {}
    for d in SOURCE_DIRS:
        for f in sorted((root / d).rglob("*.rs")):
            if "tests" in f.relative_to(root).parts:
                continue
            text = f.read_text(errors="replace")
            for m in STRUCT.finditer(text):
                s = Struct(m.group(1), f, _attrs_before(text, m.start()), _body(text, m.end() - 1))
                structs.setdefault(s.name, []).append(s)
    return structs


def _serde_args(attrs: list[str]) -> str:
    return " ".join(a for a in attrs if a.startswith("#[serde("))


def _type_name(ty: str) -> str:
    """The struct a field's type names: `Option<likes_shared::retry::Backoff>` -> Backoff."""
    ty = ty.strip()
    while True:
        m = re.match(r"^(?:[\w:]+::)?(\w+)\s*<(.*)>$", ty)
        if m and m.group(1) in WRAPPERS:
            ty = m.group(2).strip()
            continue
        break
    return re.split(r"[<\s]", ty)[0].split("::")[-1]


class Keys:
    """The key tree of one config struct: name -> subtree (a struct) or None (a setting)."""

    def __init__(self, root: Path):
        self.root = root
        self.structs = load_structs(root)

    def _find(self, name: str, near: Path) -> Struct | None:
        found = [s for s in self.structs.get(name, []) if s.deserializable]
        if len(found) > 1:
            crate = near.relative_to(self.root).parts[0]
            found = [s for s in found if s.path.relative_to(self.root).parts[0] == crate] or found
        if len(found) > 1:
            where = ", ".join(str(s.path.relative_to(self.root)) for s in found)
            raise ConfigSourceError(f"struct {name} is defined more than once ({where})")
        return found[0] if found else None

    def tree(self, file: str, name: str) -> dict:
        path = self.root / file
        cands = [s for s in self.structs.get(name, []) if s.path == path]
        if not cands:
            raise ConfigSourceError(f"no `pub struct {name}` in {file}")
        return self._tree(cands[0], (name,))

    def _tree(self, st: Struct, seen: tuple[str, ...]) -> dict:
        serde = _serde_args(st.attrs)
        if "rename_all" in serde and "snake_case" not in serde:
            raise ConfigSourceError(f"{st.name}: #[serde(rename_all)] is not read by this check")
        keys: dict = {}
        pending: list[str] = []
        depth = 0
        for line in st.body.split("\n"):
            s = line.strip()
            if depth == 0 and s.startswith("#["):
                pending.append(s)
                continue
            if depth == 0 and not s.startswith("//") and (m := FIELD.match(line)):
                attrs, pending = _serde_args(pending), []
                field, ty = m.group(1), m.group(2)
                if re.search(r"\bskip\b|\bskip_deserializing\b", attrs):
                    continue
                sub = self._find(_type_name(ty), st.path)
                if sub is not None and sub.name in seen:
                    raise ConfigSourceError(f"{st.name}.{field}: a recursive type")
                subtree = self._tree(sub, seen + (sub.name,)) if sub is not None else None
                if re.search(r"\bflatten\b", attrs):
                    if subtree is None:
                        raise ConfigSourceError(f"{st.name}.{field}: flattens {ty}, which is no config struct")
                    keys.update(subtree)
                    continue
                rename = re.search(r'\brename\s*=\s*"([^"]+)"', attrs)
                names = [rename.group(1) if rename else field] + re.findall(r'\balias\s*=\s*"([^"]+)"', attrs)
                for n in names:
                    keys[n] = subtree
            depth += s.count("{") + s.count("(") - s.count("}") - s.count(")")
        return keys


def env_key(var: str, prefix: str = "LIKES_") -> list[str] | None:
    """The key path a variable sets, as the shared loader reads it; None without the prefix."""
    if not var.upper().startswith(prefix):
        return None
    return var[len(prefix):].lower().split("__")


def lookup(tree: dict, path: list[str]) -> str | None:
    """None when the path is a setting of the tree, else why not."""
    node: dict | None = tree
    for i, part in enumerate(path):
        if node is None or part not in node:
            where = ".".join(path[:i]) or "the top level"
            return f"`{'.'.join(path)}`: no key {part!r} at {where}"
        node = node[part]
    if node is not None:
        return f"`{'.'.join(path)}` is a table of settings, not one (LIKES_{'__'.join(path).upper()}__<KEY>)"
    return None


def settings(tree: dict, prefix: str = "LIKES_") -> list[str]:
    """Every variable the tree reads (for messages and counts)."""
    out = []
    for k, v in tree.items():
        if v is None:
            out.append(prefix + k.upper())
        else:
            out.extend(settings(v, f"{prefix}{k.upper()}__"))
    return out


SHELL_NAME = re.compile(r"(?<!@)\bLIKES_[A-Z0-9_]*[A-Z0-9]\b(?!@)")
RUST_ENV_READ = re.compile(r"env::var(?:_os)?\(\s*\"(LIKES_[A-Z0-9_]+)\"")


def shell_reads(text: str) -> set[str]:
    """The LIKES_* variables a shell script names in its code (comments aside): expanded as
    `$X` or `${X...}`, or passed by name to a function that reads it (`secret_of X`)."""
    code = "\n".join(line for line in text.split("\n") if not line.lstrip().startswith("#"))
    return set(SHELL_NAME.findall(code))


def rust_env_reads(text: str) -> set[str]:
    """The LIKES_* variables Rust code reads by name (`std::env::var("LIKES_CONFIG")`)."""
    return set(RUST_ENV_READ.findall(text))
