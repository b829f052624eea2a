"""The PANfm web process: `create_app(settings=None)` builds the Flask app and everything it uses.

Production: `gunicorn --config gunicorn.conf.py 'app:create_app()'`; development or a quick
look: `python app.py` (serves on the `port` setting, 3000 unless `PANFM_PORT` says otherwise).
"""

from __future__ import annotations

import logging
import sys
import time

from flask import Flask
from flask_wtf.csrf import CSRFProtect

import panfm.web.alerts as web_alerts
import panfm.web.api as web_api
import panfm.web.applications as web_applications
import panfm.web.audit as web_audit
import panfm.web.context as web_context
import panfm.web.devices as web_devices
import panfm.web.fleet as web_fleet
import panfm.web.history as web_history
import panfm.web.interfaces as web_interfaces
import panfm.web.logs as web_logs
import panfm.web.network as web_network
import panfm.web.openapi as web_openapi
import panfm.web.settings as web_settings
import panfm.web.tokens as web_tokens
import panfm.web.users as web_users
from config import ConfigError, Settings, ensure_data_dir, load_settings, private_umask
from panfm.ops import configure_logging, install_redaction, quiet_libraries
from panfm.web.auth import Auth, init_auth
from panfm.web.cli import register_cli
from panfm.web.gate import install_db_scope, install_login_gate
from panfm.web.metrics import init_metrics
from panfm.web.pages import bp as pages_bp
from panfm.web.security import init_security

log = logging.getLogger("panfm.web")


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app over the settings' data folder (no module-level state)."""
    private_umask()  # before any file is created: `python app.py`, `flask` and any WSGI server
    settings = settings if settings is not None else load_settings()
    _configure_logging(settings)
    ensure_data_dir(settings.data_path)  # after logging: it may warn about a folder open to others
    app = Flask(__name__)
    app.config["PANFM_SETTINGS"] = settings
    web_ctx = web_context.make_context(settings)  # opens the stores: SQLite files or PostgreSQL
    app.extensions["panfm"] = web_ctx
    app.extensions["panfm_tokens"] = web_ctx.stores.tokens()  # config.db, or PostgreSQL
    app.extensions["panfm_audit"] = web_ctx.stores.audit()
    csrf = CSRFProtect()
    auth = Auth(settings.data_path, time.time, stores=web_ctx.stores)
    # The login gate (who, which role, then CSRF for sessions) is installed before Flask-WTF,
    # so an anonymous request gets a plain 401/redirect before the CSRF check looks at it.
    install_db_scope(app, web_ctx.stores)  # first: the gate's session lookup is a request's first read
    install_login_gate(app, auth, csrf)
    init_auth(app, auth, csrf, settings.admin_password, probe_database=web_ctx.database_away)
    init_security(app, settings, csrf)
    app.register_blueprint(web_api.bp)
    app.register_blueprint(web_history.bp)
    app.register_blueprint(web_fleet.bp)
    app.register_blueprint(web_interfaces.bp)
    app.register_blueprint(web_settings.bp)
    app.register_blueprint(web_devices.bp)
    app.register_blueprint(web_alerts.bp)
    app.register_blueprint(web_users.bp)
    app.register_blueprint(web_tokens.bp)
    app.register_blueprint(web_audit.bp)
    app.register_blueprint(web_openapi.bp)
    app.register_blueprint(web_network.bp)
    app.register_blueprint(web_applications.bp)
    app.register_blueprint(web_logs.bp)
    app.register_blueprint(pages_bp)
    init_metrics(app, settings, csrf)  # GET /metrics: its own access rule, no session or CSRF
    register_cli(app)
    return app


def _configure_logging(settings: Settings) -> None:
    """Log to stderr at the configured level unless a host (gunicorn, pytest) already set logging up."""
    if not logging.getLogger().handlers:
        configure_logging(settings, "web")
    logging.getLogger("panfm").setLevel(settings.log_level)
    quiet_libraries(settings)  # also under a host's logging: werkzeug and apprise log URLs
    install_redaction()


def main() -> int:
    """Serve the app with Werkzeug on the configured port (use gunicorn in production)."""
    try:
        settings = load_settings()
        app = create_app(settings)
    except ConfigError as exc:
        print(f"PANfm web: {exc}", file=sys.stderr)
        return 2
    # Werkzeug's own "Running on" line is INFO, below its logger's level (logsetup.quiet_libraries).
    log.info("[WEB] listening on http://%s:%d (development server; use gunicorn in production)",
             settings.bind_host, settings.port)
    app.run(host=settings.bind_host, port=settings.port, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
