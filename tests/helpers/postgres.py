"""A real PostgreSQL server (Debian's `postgresql`) in a temporary folder on a free loopback port.

The tests never use a server that happens to run on the machine: `PgServer` runs `initdb` and
`pg_ctl` from Debian's packages (`/usr/lib/postgresql/<version>/bin`) into a folder of its own,
listening on 127.0.0.1 only, with trust authentication for its one superuser. `initdb` refuses to
run as root, so when the tests run as root the server runs as the `postgres` user (which the
Debian package creates). `fresh_database()` gives each test its own empty database.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 60.0
SUPERUSER = "panfm_test"

# The keys every host shares on PostgreSQL (settings encryption_key and secret_key), for tests.
PG_ENCRYPTION_KEY = "u3Q5jGqQ4k3R2n1xWbB0S3n0hX0y1kqT8b8l2nq0F8A="
PG_SECRET_KEY = "test-session-key-shared-by-every-web-0123456789"


def pg_env(url: str) -> dict[str, str]:
    """The environment of a PANfm process on PostgreSQL: the URL and the keys every host shares."""
    return {"PANFM_DATABASE_URL": url, "PANFM_ENCRYPTION_KEY": PG_ENCRYPTION_KEY, "PANFM_SECRET_KEY": PG_SECRET_KEY}


def pg_bindir() -> Path | None:
    """Return the folder of the newest installed PostgreSQL server binaries, or None."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        try:
            found.append((int(Path(initdb).parts[-3]), Path(initdb).parent))
        except ValueError:
            continue
    if found:
        return max(found)[1]
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster of its own; `url(db)` gives a libpq URL, `stop()` removes it all."""

    _names = itertools.count(1)

    def __init__(self, workdir: Path) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL server binaries (apt-get install postgresql)")
        self.bindir = bindir
        self.workdir = workdir
        self.datadir = workdir / "pgdata"
        self.sockdir = workdir / "sock"
        self.log_path = workdir / "postgres.log"
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pwd.getpwnam(self.user)  # KeyError when the Debian package's user is missing
        workdir.mkdir(parents=True, exist_ok=True)
        self.sockdir.mkdir(exist_ok=True)
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (workdir, self.sockdir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            # The folders above must be traversable by the server's user.
            for parent in [workdir, *workdir.parents]:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        self._run([str(bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER, "--auth=trust",
                   "-E", "UTF8", "--no-locale", "--no-sync"])
        self.start()

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if check and done.returncode != 0:
            why = done.stderr.strip() or done.stdout.strip()
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {why}")
        return done

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        opts = (f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                "-c shared_buffers=64MB")
        # A diagnostic run's extra server options (e.g. auto_explain for a bench), never set by the suite.
        opts += " " + os.environ.get("PANFM_BENCH_PG_OPTIONS", "")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.log_path),
                   "-o", opts, "-w", "-t", str(int(START_TIMEOUT_S)), "start"])
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            ready = subprocess.run([str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not start; see {self.log_path}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (mode: smart, fast or immediate); the data folder stays."""
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"], check=False)

    def postmaster_pid(self) -> int:
        """Return the server's main process id (for SIGSTOP/SIGCONT scenarios)."""
        return int((self.datadir / "postmaster.pid").read_text().split()[0])

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with the server's own psql; return its unaligned output."""
        out = subprocess.run([str(self.bindir / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              "-d", self.url(database), "-c", sql],
                             check=True, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        return out.stdout.strip()

    def fresh_database(self, prefix: str = "t") -> str:
        """Create an empty database of its own; return its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def close(self) -> None:
        """Stop the server and remove its folder."""
        self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)
