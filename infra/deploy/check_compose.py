"""infra/deploy/check_compose.py — what can be checked of infra/compose.yaml and
infra/docker/Dockerfile without a Docker engine (run by infra/deploy/check, in infra/test). The
checks are in the modules beside it: compose_structure (keys, health checks, depends_on, files,
secrets, images, ports), compose_security (networks, credentials), compose_env (settings and
wiring; rust_config reads the binaries' config structs), compose_dockerfile, compose_tools (nginx,
promtool, amtool), compose_scripts (the image's and the services' scripts); compose_common holds
what they share.

The compose file: it parses (duplicate keys refused, as Compose refuses them), uses only keys this
check knows (a typo is not silently ignored), every long-running service has a health check and the
one-shot `init` has none, every depends_on names a service with a condition that can be met, there
is no dependency cycle, every likes service waits for `init`, every file or directory it mounts or
builds from exists in the repository (the secrets must not: they are git-ignored), named volumes and
secrets are declared, images are pinned (PingCAP's at infra/dev/services' TiDB release, Pulsar's at
infra/dev/pulsar/pom.xml's version), only Nginx is published beyond loopback. Networks: every
service names its own, each address it is given is on a network it shares, Nginx reaches only the
ingests and Grafana only Prometheus, no backend is on a published service's network and the
backends' networks are internal. Credentials: no password in the file or the files it mounts, the
likes services reach TiDB as `likes` and Redis with a password, from secret files the servers get
too. Each LIKES_* variable of a likes service is a key of its binary's config struct, read from
the Rust source (`__` nesting), or a variable the image's entrypoint reads; of another service, a
variable the script it runs reads. URLs name services of the file, and Prometheus scrapes exactly
the ingests and workers of the file.

The configs load in the real tools, as the containers see them: each service's bind mounts are
copied to the paths it mounts them at under a temporary root, then `nginx -t` on the Nginx config
that infra/deploy/nginx-start.sh renders from infra/nginx/nginx.conf (upstream host names replaced
by 127.0.0.1, because nginx -t resolves them and `ingest1` resolves only on the compose network),
`promtool check config` on Prometheus's, `amtool check-config` on Alertmanager's.

The Dockerfile: its COPY sources exist in the build context (the repository's files less
.dockerignore's patterns), the context holds the whole Cargo workspace, the packages it builds and
the binaries it copies exist. The scripts work: http-probe against a local HTTP server,
likes-entrypoint with secret files (the passwords percent-encoded into the URLs), redis-start.sh
and tidb-start.sh with what they start faked (and a real redis-server when installed).
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository

import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from compose_common import COMPOSE, begin, fail, load_compose, passed, problems, rel, required_vars  # noqa: E402
from compose_dockerfile import check_dockerfile  # noqa: E402
from compose_env import check_env, check_wiring  # noqa: E402
from compose_scripts import check_scripts  # noqa: E402
from compose_security import check_credentials, check_networks  # noqa: E402
from compose_structure import check_depends, check_files, check_images, check_ports, check_structure  # noqa: E402
from compose_tools import check_tools  # noqa: E402


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)
    print(f"[deploy/check] {rel(COMPOSE)}, infra/docker/Dockerfile")
    c = load_compose()
    if c:
        with tempfile.TemporaryDirectory(prefix="likes-deploy-check-") as tmp:
            for check in (check_structure, check_depends, check_files, check_images, check_ports, check_networks,
                          check_credentials, check_env, check_wiring, check_dockerfile, check_tools, check_scripts):
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
