"""Images the tests deploy, built locally from the static busybox (no registry is reachable).
Built once per machine and reused: each tag carries a label with the recipe's hash."""

from __future__ import annotations

import fcntl
import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker

BUSYBOX = shutil.which("busybox") or "/bin/busybox"

SERVE = ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
RECIPES: dict[str, tuple[str, list[str]]] = {
    # tag: (index.html, command)
    "lbtest/hello:v1": ("hello v1\n", SERVE),
    "lbtest/hello:v2": ("hello v2\n", SERVE),
    "lbtest/hello:v3": ("hello v3\n", SERVE),
    # Answers only after $DELAY seconds (30 by default): a deployment stays in health
    # verification that long.
    "lbtest/slow:v1": ("slow\n", ["sh", "-c", "echo warming up; sleep ${DELAY:-30}; "
                                               "exec httpd -f -p 8080 -h /www"]),
    # What the README's first steps deploy in place of nginx:1.26 and nginx:1.27.
    "lbtest/readme:1.26": ("nginx 1.26\n", ["httpd", "-f", "-v", "-p", "80", "-h", "/www"]),
    "lbtest/readme:1.27": ("nginx 1.27\n", ["httpd", "-f", "-v", "-p", "80", "-h", "/www"]),
    # Exits at once with an error on stderr.
    "lbtest/crash:v1": ("", ["sh", "-c", "echo 'fatal: cannot open config' >&2; exit 3"]),
    # A busybox with a shell and httpd: the base image of static sites in tests.
    "lbtest/busybox:v1": ("", ["sh"]),
    # Prints the environment it got, then serves it.
    "lbtest/env:v1": ("", ["sh", "-c", "env > /www/index.html; exec httpd -f -p 8080 -h /www"]),
    # Serves its environment, logs a line a second and keeps part of a core busy (metrics).
    "lbtest/busy:v1": ("", ["sh", "-c", "env > /www/index.html; (while :; do i=0; while "
                                        "[ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.1; "
                                        "done) & "
                                        "(while :; do echo tick; sleep 1; done) & "
                                        "exec httpd -f -p 8080 -h /www"]),
    # No shell at all: only /bin/busybox, named in full (argv commands only).
    "lbtest/shellless:v1": ("no shell here\n", ["/bin/busybox", "httpd", "-f", "-p", "8080",
                                                "-h", "/www"]),
}
SHELL_LESS = {"lbtest/shellless:v1"}


def _context(html: str, command: list[str], shell: bool = True) -> bytes:
    dockerfile = (
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        + ('RUN ["/bin/busybox", "--install", "-s", "/bin"]\n' if shell else "")
        + "COPY www /www\n"
        f"CMD {__import__('json').dumps(command)}\n"
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), ("www/index.html", html.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(BUSYBOX, arcname="busybox")
    return buf.getvalue()


def ensure(tag: str) -> str:
    html, command = RECIPES[tag]
    digest = hashlib.sha256(repr((html, command)).encode()).hexdigest()[:16]
    client = docker.from_env()
    try:
        image = client.images.get(tag)
        if image.labels.get("launchbay.test-recipe") == digest:
            return tag
    except docker.errors.ImageNotFound:
        pass
    client.images.build(fileobj=io.BytesIO(_context(html, command, tag not in SHELL_LESS)),
                        custom_context=True,
                        tag=tag, labels={"launchbay.test-recipe": digest}, rm=True)
    return tag


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses."""
    for source in Path("/etc/apt/sources.list.d").glob("*.sources"):
        for line in source.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    for line in Path("/etc/apt/sources.list").read_text().splitlines():
        if line.startswith("deb ") and "security" not in line:
            return line.split()[1]
    return "http://deb.debian.org/debian"


DEBIAN_BASE = "lbtest/debian:bookworm"


def debian_image(tag: str, packages: list[str], env: list[str], later: tuple[str, ...] = (),
                 changes: tuple[str, ...] = ()) -> str:
    """A Debian bookworm image with `packages` (debootstrap, a minute or two, once per
    machine: the tag is reused), then `later` installed by apt inside it (debootstrap cannot
    resolve virtual packages, which npm's dependencies need); Dockerfile `changes` (CMD...)
    last."""
    client = docker.from_env()
    # (The None stands where a recipe's files once were: the images built since stay valid.)
    digest = hashlib.sha256(repr((packages, env, later, None, changes)).encode()).hexdigest()[:16]
    # One builder at a time on the machine (both test workers may want the same image).
    with open(Path(tempfile.gettempdir()) / "lbtest-debootstrap.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if client.images.get(tag).labels.get("launchbay.test-recipe") == digest:
                return tag
        except docker.errors.ImageNotFound:
            pass
        _debootstrap(tag, packages, env, later, changes, digest)
    return tag


def _debootstrap(tag: str, packages: list[str], env: list[str], later: tuple[str, ...],
                 changes: tuple[str, ...], digest: str) -> None:
    with tempfile.TemporaryDirectory(prefix="lb-debootstrap-") as root:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
                        "bookworm", root, debian_mirror()],
                       check=True, capture_output=True, timeout=1200)
        if later:
            subprocess.run(["chroot", root, "sh", "-c", "apt-get update -q && DEBIAN_FRONTEND="
                            "noninteractive apt-get install -y -q --no-install-recommends "
                            + " ".join(later) + " && apt-get clean"],
                           check=True, capture_output=True, timeout=1200)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        options = [arg for e in env for arg in ("--change", f"ENV {e}")] + \
            [arg for c in [*changes, f"LABEL launchbay.test-recipe={digest}"]
             for arg in ("--change", c)]
        subprocess.run(["docker", "import", *options, "-", tag], stdin=tar.stdout, check=True,
                       capture_output=True, timeout=600)
        tar.wait()


def ensure_debian_base() -> str:
    """One Debian image for all that the tests run on Debian: the builders' Python and
    Node.js and the database servers. One debootstrap per machine (a fresh CI machine spends
    a minute or two on each), however many kinds of image use it."""
    return debian_image(DEBIAN_BASE, [
        "python3", "python3-pip", "python-is-python3", "nodejs", "postgresql-15",
        "postgresql-client-15", "mariadb-server", "mariadb-client", "redis-server",
        "redis-tools"], ["PIP_BREAK_SYSTEM_PACKAGES=1", "PIP_DISABLE_PIP_VERSION_CHECK=1",
                         "NPM_CONFIG_UPDATE_NOTIFIER=false", "NPM_CONFIG_FUND=false",
                         "LANG=C.UTF-8"], later=("npm",))


def ensure_python_base() -> str:
    return ensure_debian_base()


def ensure_node_base() -> str:
    return ensure_debian_base()


POSTGRES = "lbtest/postgres:15"
# What the official `postgres` image does at its first start (POSTGRES_USER, _PASSWORD, _DB;
# data in /var/lib/postgresql/data; password authentication over the network), for Debian's
# PostgreSQL 15: launchbay drives both the same way.
POSTGRES_ENTRYPOINT = r"""#!/bin/sh
set -e
BIN=/usr/lib/postgresql/15/bin
PGDATA=/var/lib/postgresql/data
if [ "$1" = postgres ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
    chown postgres "$pwfile"
    runuser -u postgres -- "$BIN/initdb" -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" \
      --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    if [ -n "$POSTGRES_DB" ] && [ "$POSTGRES_DB" != "${POSTGRES_USER:-postgres}" ]; then
      runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start
      runuser -u postgres -- psql -U "${POSTGRES_USER:-postgres}" -d postgres \
        -c "CREATE DATABASE \"$POSTGRES_DB\""
      runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop
    fi
  fi
  unset POSTGRES_PASSWORD
  exec runuser -u postgres -- "$BIN/postgres" -D "$PGDATA"
fi
exec "$@"
"""


def _database_image(tag: str, entrypoint: str | None, command: str) -> str:
    """A database image from the Debian base (which has all three servers): its entrypoint
    (the official image's start-up contract) and command on top."""
    base = ensure_debian_base()
    files = {"entrypoint": entrypoint} if entrypoint else {}
    dockerfile = (f"FROM {base}\n" + ("COPY entrypoint /usr/local/bin/entrypoint\n"
                                      'ENTRYPOINT ["/usr/local/bin/entrypoint"]\n'
                                      if entrypoint else "") + f"CMD {command}\n")
    return _built(tag, dockerfile, {name: (text, 0o755) for name, text in files.items()})


def _built(tag: str, dockerfile: str, files: dict[str, tuple[str, int]],
           binary: dict[str, str] | None = None) -> str:
    """`tag` built from `dockerfile` and `files` (name: (text, mode)) and `binary` (name: a
    file of this machine), once: the recipe's hash is a label of the image."""
    client = docker.from_env()
    base = dockerfile.split("\n", 1)[0].removeprefix("FROM ")
    base_id = client.images.get(base).id if base != "scratch" else ""
    digest = hashlib.sha256(repr((dockerfile, files, binary, base_id)).encode()).hexdigest()[:16]
    try:
        if client.images.get(tag).labels.get("launchbay.test-recipe") == digest:
            return tag
    except docker.errors.ImageNotFound:
        pass
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (text, mode) in {"Dockerfile": (dockerfile, 0o644), **files}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(text.encode()), mode
            tar.addfile(info, io.BytesIO(text.encode()))
        for name, path in (binary or {}).items():
            tar.add(path, arcname=name)
    client.images.build(fileobj=io.BytesIO(buf.getvalue()), custom_context=True, tag=tag,
                        labels={"launchbay.test-recipe": digest}, rm=True)
    return tag


def ensure_postgres() -> str:
    return _database_image(POSTGRES, POSTGRES_ENTRYPOINT, '["postgres"]')


MARIADB = "lbtest/mariadb:10.11"
# What the official `mariadb` image does at its first start (MYSQL_USER, _PASSWORD,
# _DATABASE, _ROOT_PASSWORD for root@'%'; data in /var/lib/mysql), for Debian's MariaDB.
MARIADB_ENTRYPOINT = r"""#!/bin/sh
set -e
DATA=/var/lib/mysql
if [ "$1" = mariadbd ]; then
  mkdir -p /run/mysqld "$DATA"
  chown mysql:mysql /run/mysqld "$DATA"
  if [ ! -e "$DATA/.initialized" ]; then
    rm -rf "$DATA"/*
    mariadb-install-db --user=mysql --datadir="$DATA" --skip-test-db >/dev/null
    mariadbd --user=mysql --skip-networking --socket=/run/mysqld/init.sock &
    pid=$!
    for i in $(seq 120); do
      mariadb --socket=/run/mysqld/init.sock -e 'SELECT 1' >/dev/null 2>&1 && break
      sleep 0.5
    done
    mariadb --socket=/run/mysqld/init.sock <<SQL
CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;
CREATE USER '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'%';
SQL
    if [ -n "$MYSQL_ROOT_PASSWORD" ]; then
      mariadb --socket=/run/mysqld/init.sock <<SQL
CREATE USER 'root'@'%' IDENTIFIED BY '$MYSQL_ROOT_PASSWORD';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
SQL
    fi
    kill "$pid"
    wait "$pid" || true
    touch "$DATA/.initialized"
  fi
  unset MYSQL_PASSWORD MYSQL_ROOT_PASSWORD
  exec mariadbd --user=mysql --bind-address=0.0.0.0
fi
exec "$@"
"""


def ensure_mariadb() -> str:
    return _database_image(MARIADB, MARIADB_ENTRYPOINT, '["mariadbd"]')


REDIS = "lbtest/redis:7"


def ensure_redis() -> str:
    """Debian's Redis: launchbay starts it with its own command, as it does `redis:7`."""
    return _database_image(REDIS, None, '["redis-server"]')


# Apps that read and write their database through the DATABASE_URL they are given: GET
# /cgi-bin/write?N adds the row N, GET /cgi-bin/read lists the rows (busybox's httpd, in the
# database's own image for its client).
PG_CGI = {
    "write": 'psql "$DATABASE_URL" -qtAc "CREATE TABLE IF NOT EXISTS notes (n int); '
             'INSERT INTO notes VALUES (${QUERY_STRING%%[!0-9]*})" && echo ok',
    "read": 'psql "$DATABASE_URL" -qtAc "SELECT string_agg(n::text, \',\' ORDER BY n) '
            'FROM notes"',
}
_MYSQL_URL = ('u=${DATABASE_URL#*://}; cred=${u%%@*}; rest=${u#*@}; hostport=${rest%%/*}\n'
              'export MYSQL_PWD=${cred#*:}\n'
              'sql() { mariadb -h "${hostport%%:*}" -u "${cred%%:*}" "${rest#*/}" -N -e "$1"; }\n')
MYSQL_CGI = {
    "write": _MYSQL_URL + 'sql "CREATE TABLE IF NOT EXISTS notes (n int); '
                          'INSERT INTO notes VALUES (${QUERY_STRING%%[!0-9]*})" && echo ok',
    "read": _MYSQL_URL + "sql \"SELECT GROUP_CONCAT(n ORDER BY n) FROM notes\"",
}
REDIS_CGI = {
    "write": 'redis-cli -u "$DATABASE_URL" RPUSH notes "${QUERY_STRING%%[!0-9]*}" >/dev/null '
             '2>&1 && echo ok',
    "read": 'redis-cli -u "$DATABASE_URL" LRANGE notes 0 -1 2>/dev/null | paste -sd,',
}
APPS = {"postgres": ("lbtest/pgapp:v1", ensure_postgres, PG_CGI),
        "redis": ("lbtest/redisapp:v1", ensure_redis, REDIS_CGI),
        "mysql": ("lbtest/mysqlapp:v1", ensure_mariadb, MYSQL_CGI)}


def ensure_app(kind: str) -> str:
    tag, ensure_base, scripts = APPS[kind]
    dockerfile = (f"FROM {ensure_base()}\nCOPY busybox /bin/busybox\nCOPY www /www\n"
                  'ENTRYPOINT []\nCMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", '
                  '"/www"]\n')
    files = {"www/index.html": ("app\n", 0o644), **{
        f"www/cgi-bin/{name}": (f"#!/bin/sh\necho 'Content-Type: text/plain'\necho\n"
                                f"{script}\n", 0o755) for name, script in scripts.items()}}
    return _built(tag, dockerfile, files, {"busybox": BUSYBOX})


def ensure_all() -> None:
    for tag in RECIPES:
        ensure(tag)


CADDY = "lbtest/caddy:2"


def ensure_caddy() -> str:
    """Caddy in an image (the swarm's edge runs one on each node; production uses
    `caddy:2`): this machine's own `caddy` and the libraries it links, on nothing else, with
    a `caddy` on the PATH as in the official image."""
    binary = shutil.which("caddy") or "/usr/bin/caddy"
    linked = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libraries = sorted({part for line in linked.splitlines() for part in line.split()
                        if part.startswith("/")})
    digest = hashlib.sha256(repr((Path(binary).stat().st_size, libraries)).encode()) \
        .hexdigest()[:16]
    client = docker.from_env()
    try:
        if client.images.get(CADDY).labels.get("launchbay.test-recipe") == digest:
            return CADDY
    except docker.errors.ImageNotFound:
        pass
    dockerfile = ("FROM scratch\nCOPY rootfs /\nENV PATH=/usr/bin\n"
                  'CMD ["caddy", "run"]\n')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(binary, arcname="rootfs/usr/bin/caddy")
        for library in libraries:
            tar.add(str(Path(library).resolve()), arcname=f"rootfs{library}")
        for folder in ("etc/launchbay", "data", "config", "tmp"):
            info = tarfile.TarInfo(f"rootfs/{folder}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755 if folder != "tmp" else 0o1777
            tar.addfile(info)
    client.images.build(fileobj=io.BytesIO(buf.getvalue()), custom_context=True, tag=CADDY,
                        labels={"launchbay.test-recipe": digest}, rm=True)
    return CADDY
