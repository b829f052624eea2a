#!/bin/sh
# Check the data folder and settings before starting a PANfm process; refuse with a clear message.
set -eu
DATA="${PANFM_DATA_DIR:-/data}"
if [ ! -d "$DATA" ]; then
  mkdir -p "$DATA" 2>/dev/null || { echo "panfm: cannot create data folder $DATA (mount a volume there)" >&2; exit 1; }
  chmod 0700 "$DATA"
fi
if [ ! -w "$DATA" ] || [ ! -r "$DATA" ] || [ ! -x "$DATA" ]; then
  echo "panfm: data folder $DATA is not readable and writable by uid $(id -u);" \
       "fix with: chown -R $(id -u):$(id -g) <volume> (or run the container as the volume's owner)" >&2
  exit 1
fi
for f in settings.json config.db throughput_history.db alerts.db encryption.key secret_key; do
  if [ -e "$DATA/$f" ] && { [ ! -r "$DATA/$f" ] || [ ! -w "$DATA/$f" ]; }; then
    echo "panfm: $DATA/$f is not readable and writable by uid $(id -u); fix its owner or mode" >&2
    exit 1
  fi
done
# Validates settings.json and every PANFM_* variable; prints the setting at fault and exits 1.
python -c 'import sys, config
try:
    config.ensure_data_dir(config.load_settings().data_path)
except config.ConfigError as exc:
    sys.exit(f"panfm: {exc}")'
exec "$@"
