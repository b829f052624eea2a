"""The stores added by issues 15, 16 and 18, on both backends (scenario S11): SQLite files and PostgreSQL.

Users with roles and the disabled flag, personal API tokens, the audit trail, a device's uplinks
and the admin's per-MAC metadata. Every test takes `stores` (tests/conftest.py), built by
`open_stores` over an empty `database_url` (config.db in the data folder) or a fresh PostgreSQL
database: the same calls must give the same answers.
"""

from __future__ import annotations

import threading

from panfm.models import DeviceConfig, TlsConfig
from throughput_storage import TokenRecord, config_store


def _device(name: str, host: str, uplinks: tuple[str, ...] = ()) -> DeviceConfig:
    return DeviceConfig(id="", name=name, host=host, port=443, api_key="K-" + name,
                        tls=TlsConfig(mode="fingerprint", fingerprint_sha256="ab" * 32, ca_pem=None),
                        interfaces=("ethernet1/1", "ethernet1/2"), uplinks=uplinks)


def _token(token_id: str, username: str, role: str = "viewer", created: float = 100.0,
           expires: float | None = None) -> TokenRecord:
    return TokenRecord(token_id, username, "name-" + token_id, role, created, expires, None)


def test_users_carry_a_role_and_a_disabled_flag_and_a_disabled_user_has_no_password(stores):
    users = stores.users()
    assert users.create_first("admin", "h-admin", 10.0)
    assert users.create("bob", "h-bob", "viewer", must_change=True, now=20.0)
    assert not users.create("BOB", "h-other", "admin", must_change=False, now=21.0)  # names compare without case
    assert [(a.username, a.role, a.disabled, a.must_change_password) for a in users.accounts()] == [
        ("admin", "admin", False, True), ("bob", "viewer", False, True)]
    bob = users.account("bob")
    assert bob is not None and (bob.created_at, bob.updated_at) == (20.0, 20.0)
    assert users.password_of("bob") == ("h-bob", True)
    assert users.change("bob", role="operator", disabled=None, now=30.0) == "ok"
    assert users.change("bob", role=None, disabled=True, now=31.0) == "ok"
    bob = users.account("bob")
    assert bob is not None and (bob.role, bob.disabled, bob.updated_at) == ("operator", True, 31.0)
    assert users.password_of("bob") is None  # disabled: it cannot log in
    assert users.change("nobody", role="admin", disabled=None, now=32.0) == "missing"
    assert users.account("nobody") is None


def test_the_last_enabled_admin_stays_and_a_deleted_user_takes_its_tokens_along(stores):
    users, tokens = stores.users(), stores.tokens()
    users.create_first("admin", "h", 1.0)
    users.create("carol", "h", "viewer", must_change=False, now=2.0)
    assert users.change("admin", role="viewer", disabled=None, now=3.0) == "last_admin"
    assert users.change("admin", role=None, disabled=True, now=3.0) == "last_admin"
    assert users.delete("admin") == "last_admin"
    assert users.account("admin").role == "admin"  # nothing changed
    assert tokens.create(_token("t1", "carol"), "digest-1", 10)
    assert users.delete("carol") == "ok" and users.delete("carol") == "missing"
    assert tokens.get("t1") is None and tokens.find("digest-1") is None


def test_two_admins_demoting_each_other_at_once_leave_one_admin(stores):
    users = stores.users()
    users.create_first("a1", "h", 1.0)
    users.create("a2", "h", "admin", must_change=False, now=1.0)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(name: str) -> None:
        barrier.wait()
        outcomes.append(users.change(name, role="viewer", disabled=None, now=2.0))

    threads = [threading.Thread(target=demote, args=(n,)) for n in ("a1", "a2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["last_admin", "ok"]
    assert [a.username for a in users.accounts() if a.role == "admin" and not a.disabled] != []


def test_tokens_are_found_by_digest_with_their_owners_current_role_listed_touched_and_revoked(stores):
    users, tokens = stores.users(), stores.tokens()
    users.create_first("admin", "h", 1.0)
    users.create("dave", "h", "operator", must_change=False, now=1.0)
    assert tokens.create(_token("t1", "dave", "viewer", created=100.0, expires=5000.0), "d1", 2)
    assert tokens.create(_token("t2", "dave", "operator", created=200.0), "d2", 2)
    assert not tokens.create(_token("t3", "dave", created=300.0), "d3", 2)  # the owner's limit
    assert tokens.create(_token("t4", "admin", "admin", created=150.0), "d4", 2)
    found = tokens.find("d1")
    assert found is not None and (found.id, found.role, found.expires_at, found.last_used) == ("t1", "viewer", 5000.0,
                                                                                              None)
    assert (found.user_role, found.user_disabled) == ("operator", False)
    assert tokens.find("nope") is None
    assert [t.id for t in tokens.list("dave")] == ["t2", "t1"]  # newest first
    assert [t.id for t in tokens.list(None)] == ["t2", "t4", "t1"]
    tokens.touch("t1", 1000.0, 60.0)
    tokens.touch("t1", 1030.0, 60.0)  # within a minute of the last: not written
    assert tokens.get("t1").last_used == 1000.0
    tokens.touch("t1", 1061.0, 60.0)
    assert tokens.get("t1").last_used == 1061.0
    users.change("dave", role=None, disabled=True, now=2.0)
    assert tokens.find("d2").user_disabled is True  # the owner's state now, not at creation
    assert tokens.delete("t2") and not tokens.delete("t2")
    assert tokens.find("d2") is None


def test_the_audit_trail_keeps_microsecond_keys_unique_in_order_and_pages_newest_first(stores):
    log = stores.audit()
    now = 1_800_000_000.0  # microseconds past 2**31 and 2**32: a BIGINT on PostgreSQL
    first = log.append("admin", "device.create", "fw1", {"host": "10.0.0.1", "api_key": "(set)"}, now)
    second = log.append("cli:root", "user.update", "bob", {"role": "viewer"}, now)  # the same microsecond
    third = log.append("admin", "login", "session", {}, now - 10)  # a clock step back
    assert first == int(now * 1_000_000) > 2**32 and second == first + 1 and third == first + 2
    page = log.page(None, 2)
    assert [(e.t_us, e.actor, e.action, e.target) for e in page] == [
        (third, "admin", "login", "session"), (second, "cli:root", "user.update", "bob")]
    assert [e.fields for e in log.page(second, 10)] == [{"api_key": "(set)", "host": "10.0.0.1"}]
    assert log.cleanup(now + 2 * 86400, 1) == 3 and log.page(None, 10) == []


def test_audit_entries_appended_at_once_by_several_writers_all_get_a_key_of_their_own(stores):
    log = stores.audit()
    barrier = threading.Barrier(4)
    keys: list[int] = []

    def append(i: int) -> None:
        barrier.wait()
        for j in range(5):
            keys.append(log.append(f"user{i}", "login", "session", {"n": j}, 1_700_000_000.0))

    threads = [threading.Thread(target=append, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 20
    assert sorted(e.t_us for e in log.page(None, 100)) == sorted(keys)


def test_a_devices_uplinks_round_trip_and_are_read_without_a_secret(stores):
    fw = stores.devices.add(_device("fw1", "10.0.0.1", uplinks=("ethernet1/1",)))
    other = stores.devices.add(_device("fw2", "10.0.0.2"))
    assert stores.devices.get(fw).uplinks == ("ethernet1/1",)
    assert config_store.device_uplinks(stores.backend, fw) == ("ethernet1/1",)
    assert config_store.device_uplinks(stores.backend, other) == ()
    assert config_store.device_uplinks(stores.backend, "missing") is None  # unknown: the API answers 404
    moved = DeviceConfig(**{**stores.devices.get(fw).__dict__, "uplinks": ("ethernet1/1", "ethernet1/2")})
    assert stores.devices.update(moved)
    assert config_store.device_uplinks(stores.backend, fw) == ("ethernet1/1", "ethernet1/2")


def test_metadata_per_mac_merges_edits_and_an_import_keeps_what_was_set(stores):
    meta = stores.metadata()
    assert meta.all() == {}
    mac = "00:1b:17:00:00:01"
    doc = meta.update(mac, {"name": "printer", "tags": ["floor-2", "office"]})
    assert doc == {"name": "printer", "comment": None, "tags": ["floor-2", "office"], "location": None}
    meta.update(mac, {"location": "room 12", "bogus": "ignored"})
    assert meta.all() == {mac: {"name": "printer", "comment": None, "tags": ["floor-2", "office"],
                                "location": "room 12"}}
    other = "00:1b:17:00:00:02"
    assert meta.import_many({mac: {"name": "from 1.x"}, other: {"name": "camera", "comment": "lobby"}}) == 1
    assert meta.all()[mac]["name"] == "printer" and meta.all()[other]["comment"] == "lobby"
    assert meta.import_many({mac: {"name": "from 1.x"}}, overwrite=True) == 1
    assert meta.all()[mac] == {"name": "from 1.x", "comment": None, "tags": [], "location": None}


def test_token_calls_count_per_fixed_minute_across_writers(stores):
    sessions = stores.sessions()
    start = 1_800_000_000  # a minute boundary
    assert [sessions.hit("token:a", 3, 60, start + i) for i in range(3)] == [None, None, None]
    assert sessions.hit("token:a", 3, 60, start + 10.5) == 50  # seconds to the next minute
    assert sessions.hit("token:b", 3, 60, start + 11) is None  # a budget of its own
    assert sessions.hit("token:a", 3, 60, start + 60) is None  # the next minute: a new budget
    barrier = threading.Barrier(4)
    refused: list[bool] = []

    def burst() -> None:
        barrier.wait()
        for _ in range(5):
            refused.append(sessions.hit("token:c", 10, 60, start + 120) is not None)

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused.count(False) == 10 and refused.count(True) == 10  # one shared count, none lost
