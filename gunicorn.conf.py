"""gunicorn settings for the PANfm web process (`gunicorn --config gunicorn.conf.py 'app:create_app()'`).

Address, port and workers are PANfm settings (`PANFM_BIND_HOST`, `PANFM_PORT`,
`PANFM_WEB_WORKERS`), validated by config.py like every other: a bad value stops gunicorn with
a message naming it.
"""

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
