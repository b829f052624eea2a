"""Typed, validated settings; generated files in the data folder; secrets at rest (Fernet).

The work is split by job: `values.py` declares every setting and loads its value (environment
over `settings.json` over the default), `numbers.py` reads bounded numbers, `files.py` keeps the
data folder's files private and writes them atomically (`settings.json` included), and
`secretbox.py` holds the secrets at rest. Every public name is importable from here.
"""

from panfm.settings.files import (
    PRIVATE_UMASK,
    atomic_write,
    create_once,
    ensure_data_dir,
    make_private,
    private_umask,
    save_settings,
)
from panfm.settings.numbers import MAX_NUMBER_TEXT, bounded_int, bounded_number
from panfm.settings.secretbox import KEY_FILE, SECRET_KEY_FILE, SecretBox, secret_key
from panfm.settings.values import (
    ENV_PREFIX,
    SETTINGS_FILE,
    ConfigError,
    Settings,
    coerce,
    declared,
    env_values,
    load_settings,
    read_settings_file,
    setting,
)

__all__ = [
    "ENV_PREFIX",
    "KEY_FILE",
    "MAX_NUMBER_TEXT",
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
    "setting",
]
