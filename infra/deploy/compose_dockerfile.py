"""infra/deploy/compose_dockerfile.py — infra/docker/Dockerfile against its build context: COPY
sources after .dockerignore, the Cargo workspace, the packages it builds and binaries it copies,
the health check tools it installs."""

from __future__ import annotations

import re
import tomllib

from compose_common import FILES, PROJECT_DIR, ROOT, fail, ok, rel


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
