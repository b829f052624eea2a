"""PANfm's settings: one typed, validated declaration per setting, and the secrets kept at rest.

The front door of the settings area (the work lives in `panfm/settings/`). A setting comes
from its default, then the data folder's `settings.json` (what the UI edits), then the
`PANFM_*` environment (and `PANFM_*_FILE` for secrets); a bad value stops the process with a
`ConfigError` that names the setting. `SecretBox` encrypts device and channel secrets with the
Fernet key of the data folder.
"""

from panfm.settings.files import (
    atomic_write,
    clean_changes,
    create_once,
    ensure_data_dir,
    private_umask,
    save_settings,
)
from panfm.settings.numbers import bounded_int, bounded_number
from panfm.settings.secretbox import KEY_FILE, SECRET_KEY_FILE, SecretBox, secret_key
from panfm.settings.values import (
    SETTINGS_FILE,
    ConfigError,
    Settings,
    check_stored,
    coerce,
    declared,
    load_settings,
    read_settings_file,
)

__all__ = [
    "KEY_FILE",
    "SECRET_KEY_FILE",
    "SETTINGS_FILE",
    "ConfigError",
    "SecretBox",
    "Settings",
    "atomic_write",
    "bounded_int",
    "bounded_number",
    "check_stored",
    "clean_changes",
    "coerce",
    "create_once",
    "declared",
    "ensure_data_dir",
    "load_settings",
    "private_umask",
    "read_settings_file",
    "save_settings",
    "secret_key",
]
