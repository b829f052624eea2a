"""PANfm's settings: one typed, validated declaration per setting, and the secrets kept at rest.

The front door of the settings area (the work lives in `panfm/settings/`). A setting comes
from its default, then the data folder's `settings.json` (what the UI edits), then the
`PANFM_*` environment (and `PANFM_*_FILE` for secrets); a bad value stops the process with a
`ConfigError` that names the setting. `SecretBox` encrypts device and channel secrets with the
Fernet key of the data folder.
"""

from panfm.settings import (
    ENV_PREFIX,
    KEY_FILE,
    PRIVATE_UMASK,
    SECRET_KEY_FILE,
    SETTINGS_FILE,
    ConfigError,
    SecretBox,
    Settings,
    atomic_write,
    bounded_int,
    bounded_number,
    coerce,
    create_once,
    declared,
    ensure_data_dir,
    env_values,
    load_settings,
    make_private,
    private_umask,
    read_settings_file,
    save_settings,
    secret_key,
)

__all__ = [
    "ENV_PREFIX",
    "KEY_FILE",
    "PRIVATE_UMASK",
    "SECRET_KEY_FILE",
    "SETTINGS_FILE",
    "ConfigError",
    "SecretBox",
    "Settings",
    "atomic_write",
    "bounded_int",
    "bounded_number",
    "coerce",
    "create_once",
    "declared",
    "ensure_data_dir",
    "env_values",
    "load_settings",
    "make_private",
    "private_umask",
    "read_settings_file",
    "save_settings",
    "secret_key",
]
