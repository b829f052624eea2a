"""Settings: one declaration each, environment over file over default, loud failures."""

import json
import multiprocessing
import os
import stat

import pytest

import config
from config import ConfigError, SecretBox, load_settings, save_settings


def test_it_uses_defaults_without_env_or_file(tmp_path):
    s = load_settings(env={"PANFM_DATA_DIR": str(tmp_path)})
    assert s.refresh_interval == 30
    assert s.port == 3000
    assert s.fixed_by_env == {"data_dir"}


def test_env_wins_over_settings_file(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"refresh_interval": 60, "theme": "dark"}))
    s = load_settings(env={"PANFM_DATA_DIR": str(tmp_path), "PANFM_REFRESH_INTERVAL": "15"})
    assert s.refresh_interval == 15
    assert s.theme == "dark"
    assert "refresh_interval" in s.fixed_by_env and "theme" not in s.fixed_by_env


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("PANFM_REFRESH_INTERVAL", "4", "between 5 and 300"),
        ("PANFM_REFRESH_INTERVAL", "abc", "whole number"),
        ("PANFM_PORT", "70000", "between 1 and 65535"),
        ("PANFM_SECURE_COOKIES", "maybe", "true or false"),
        ("PANFM_LOG_FORMAT", "xml", "one of text, json"),
        ("PANFM_REQUEST_TIMEOUT", "nan", "finite"),
    ],
)
def test_a_bad_env_value_names_the_variable(tmp_path, var, value, fragment):
    with pytest.raises(ConfigError) as err:
        load_settings(env={"PANFM_DATA_DIR": str(tmp_path), var: value})
    assert var in str(err.value) and fragment in str(err.value)


def test_a_secret_file_variant_is_read_and_its_value_never_echoed(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret-value\n")
    s = load_settings(env={"PANFM_DATA_DIR": str(tmp_path), "PANFM_ADMIN_PASSWORD_FILE": str(secret)})
    assert s.admin_password == "s3cret-value"
    assert "s3cret" not in repr(s)


def test_a_broken_settings_file_names_file_and_field_and_is_left_untouched(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('{"refresh_interval": "often"}')
    with pytest.raises(ConfigError) as err:
        load_settings(env={"PANFM_DATA_DIR": str(tmp_path)})
    assert "settings.json" in str(err.value) and "refresh_interval" in str(err.value)
    assert path.read_text() == '{"refresh_interval": "often"}'
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_settings(env={"PANFM_DATA_DIR": str(tmp_path)})


def test_save_merges_and_keeps_unrelated_keys(tmp_path):
    save_settings(tmp_path, {"theme": "dark"})
    save_settings(tmp_path, {"refresh_interval": 10})
    assert json.loads((tmp_path / "settings.json").read_text()) == {"theme": "dark", "refresh_interval": 10}
    with pytest.raises(ConfigError):
        save_settings(tmp_path, {"refresh_interval": 1000})
    with pytest.raises(ConfigError):
        save_settings(tmp_path, {"port": 1})  # not editable from the web
    assert json.loads((tmp_path / "settings.json").read_text())["refresh_interval"] == 10


def _make_key(path):
    return SecretBox.for_data_dir(path).encrypt("x")


def test_encryption_key_is_created_once_even_when_processes_race(tmp_path):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        tokens = pool.map(_make_key, [tmp_path] * 8)
    box = SecretBox.for_data_dir(tmp_path)
    assert all(box.decrypt(t) == "x" for t in tokens)
    assert stat.S_IMODE(os.stat(tmp_path / config.KEY_FILE).st_mode) == 0o600


def test_a_token_from_another_key_is_a_clear_error(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    token = SecretBox.for_data_dir(a).encrypt("secret")
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        SecretBox.for_data_dir(b).decrypt(token)


def test_unusable_data_dir_is_reported(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(ConfigError, match="data folder"):
        config.ensure_data_dir(f)


def test_a_box_follows_a_rotated_key_file_without_restart(tmp_path):
    from cryptography.fernet import Fernet

    box = SecretBox.for_data_dir(tmp_path)
    old_token = box.encrypt("api-key")
    old_key = (tmp_path / config.KEY_FILE).read_bytes().strip()
    new_key = Fernet.generate_key()
    config.atomic_write(tmp_path / config.KEY_FILE, new_key + b"\n" + old_key + b"\n")
    assert box.decrypt(old_token) == "api-key"
    new_token = box.encrypt("api-key")
    config.atomic_write(tmp_path / config.KEY_FILE, new_key + b"\n")  # old key dropped
    assert box.decrypt(new_token) == "api-key", "what the running box wrote after rotation stays readable"
    with pytest.raises(ConfigError):
        box.decrypt(old_token)


def test_it_keeps_every_key_when_settings_are_saved_at_the_same_moment(tmp_path):
    import threading

    # Two gunicorn workers saving different settings at once: neither may wipe the other's key.
    names = ["refresh_interval", "raw_retention_days", "hourly_retention_days", "throughput_retention_days"]
    for attempt in range(5):
        (tmp_path / "settings.json").unlink(missing_ok=True)
        barrier = threading.Barrier(len(names))

        def put(name, value=20 + attempt, barrier=barrier):
            barrier.wait()
            save_settings(tmp_path, {name: value})

        threads = [threading.Thread(target=put, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert json.loads((tmp_path / "settings.json").read_text()) == dict.fromkeys(names, 20 + attempt)


@pytest.mark.parametrize("value", ["٣٠", "３０", "3²", "1" + "0" * 400, "9" * 5000, " 30 x"])
def test_a_whole_number_setting_takes_only_ascii_digits_within_bounds(tmp_path, value):
    with pytest.raises(ConfigError) as err:
        load_settings(env={"PANFM_DATA_DIR": str(tmp_path), "PANFM_REFRESH_INTERVAL": value})
    assert "PANFM_REFRESH_INTERVAL" in str(err.value) and "between 5 and 300" in str(err.value)


@pytest.mark.parametrize("value", [10**400, -(10**400), "1" + "0" * 400, "1e400", "٣", "NaN", True])
def test_bounded_numbers_refuse_what_no_field_can_hold_with_a_value_error(value):
    with pytest.raises(ValueError, match="between"):
        config.bounded_int(value, 1, 1000)
    with pytest.raises(ValueError, match="between"):
        config.bounded_number(value, -1e15, 1e15)


def test_bounded_numbers_read_json_numbers_and_ascii_text():
    assert config.bounded_int(" 42 ", 1, 100) == 42
    assert config.bounded_int(60.0, 1, 100) == 60
    assert config.bounded_number("2.5e1", 0, 100) == 25.0
    assert config.bounded_number(7, 0, 100) == 7.0
