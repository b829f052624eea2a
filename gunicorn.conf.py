"""gunicorn settings for the PANfm web process (`gunicorn --config gunicorn.conf.py 'app:create_app()'`).

Address, port and workers are PANfm settings (`PANFM_BIND_HOST`, `PANFM_PORT`,
`PANFM_WEB_WORKERS`), validated by config.py like every other: a bad value stops gunicorn with
a message naming it.
"""

import os
import sys

# Under another name: gunicorn reads every module-level name here as a setting, and `config` is one.
import config as _panfm_config

# In the master, before it forks: the workers and every file they create are private (0600).
# (gunicorn's own `umask` setting applies only to daemon mode and unix sockets.)
_panfm_config.private_umask()

try:
    _settings = _panfm_config.load_settings()
except _panfm_config.ConfigError as exc:
    sys.exit(f"panfm: {exc}")

if _settings.on_postgres:
    # In the master, before any worker boots: a database the workers could not use (server,
    # rights, version, shared keys, key marker) stops the start with the setting and the cause
    # (exit 2), not with a worker's traceback. Migrations run here once, too.
    import throughput_storage as _panfm_storage

    try:
        _panfm_storage.open_stores(_settings).close()
    except _panfm_config.ConfigError as exc:
        sys.stderr.write(f"panfm: cannot start: {exc}\n")
        sys.exit(2)
    # Checked: the workers (forked later, and again after a crash, possibly while the server
    # restarts) open their pool without a check of their own and answer 503 until it is back.
    os.environ[_panfm_storage.CHECKED_BY_MASTER_ENV] = "1"

# prometheus_client's multiprocess mode for the web's request metrics (docs/metrics.md): every
# worker writes its values to files in a private folder of the data folder, /metrics sums them.
# Emptied at each start: a previous run's counts would add up with this one's. Set here, in the
# master, before any worker imports prometheus_client (it reads the variable at import).
try:
    _multiproc = _panfm_config.ensure_data_dir(_settings.data_path) / "prometheus-multiproc"
    _multiproc.mkdir(mode=0o700, exist_ok=True)
    _multiproc.chmod(0o700)
    for _stale in _multiproc.glob("*.db"):
        _stale.unlink()
except (OSError, _panfm_config.ConfigError) as exc:
    sys.exit(f"panfm: metrics folder: {exc}")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_multiproc)


def child_exit(server, worker):
    """A worker ended: drop its live-gauge files (its counters and histograms stay summed)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


bind = f"{_settings.bind_host}:{_settings.port}"
workers = _settings.web_workers
threads = 4
worker_class = "gthread"
timeout = 30
graceful_timeout = 10
accesslog = "-"
# Never log query strings' secrets: PANfm's API takes none, and the access log shows path only.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
# No control socket: it lives in $HOME (not writable for the container user) and two instances
# on one host (web + tests, or two data folders) would fight over it.
control_socket_disable = True
