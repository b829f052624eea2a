"""gunicorn settings for the PANfm web process (`gunicorn --config gunicorn.conf.py 'app:create_app()'`)."""

import os

bind = f"{os.environ.get('PANFM_BIND_HOST', '0.0.0.0')}:{os.environ.get('PANFM_PORT', '3000')}"  # noqa: S104
workers = int(os.environ.get("PANFM_WEB_WORKERS", "2"))
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
