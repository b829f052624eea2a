"""network.db's store and reader on both backends (scenario S11): the SQLite file and PostgreSQL.

Connected devices (new MACs, current ones, leases), ACC applications, threats and URLs, log
entries, the fleet summary and retention, written with `Stores.open_network_writer()` (the
clock's) and read with `Stores.open_network_reader()` (the web's), over an empty `database_url`
or a fresh PostgreSQL database: the same calls must give the same answers, in the same types.
"""

from __future__ import annotations

import pytest


def _row(mac: str, ip: str = "10.0.0.1", **kw):
    return {"mac": mac, "ip": ip, "interface": "ethernet1/2", "vlan": None, "zone": "trust", "user": None,
            "vendor": None, "dhcp_hostname": None, "dns_name": None, "static": False, "randomized_mac": False,
            "lease_expires": None, **kw}


@pytest.fixture
def network(stores):
    store = stores.open_network_writer()
    yield store
    store.close()


def test_the_reader_answers_none_or_nothing_before_the_clock_wrote(stores):
    with stores.open_network_reader() as reader:
        if reader is not None:  # PostgreSQL: the tables exist from the start, empty
            assert reader.devices(1000.0) == [] and reader.snapshots() == {} and reader.fleet_summary(0.0) == {}
    assert stores.on_postgres or not (stores.data_dir / "network.db").exists()


def test_a_new_mac_is_reported_once_and_a_gone_one_leaves_the_current_list(stores, network):
    assert network.record("fw", 1000.0, [_row("00:1b:17:00:00:01"), _row("00:1b:17:00:00:02", "10.0.0.2")]) == []
    new = network.record("fw", 1300.0, [_row("00:1b:17:00:00:01"),
                                         _row("00:1b:17:00:00:03", "10.0.0.3", vlan=100, user="corp\\ann")])
    assert [(r["mac"], r["vlan"], r["user"]) for r in new] == [("00:1b:17:00:00:03", 100, "corp\\ann")]
    assert network.record("fw", 1600.0, [_row("00:1b:17:00:00:01"), _row("00:1b:17:00:00:03", "10.0.0.3")]) == []
    network.record("fw2", 1600.0, [_row("00:1b:17:00:00:09")])
    assert [r["mac"] for r in network.record("fw2", 1900.0, [_row("00:1b:17:00:00:01")])] == ["00:1b:17:00:00:01"]
    with stores.open_network_reader() as reader:
        current = {d["mac"]: d for d in reader.devices(2000.0, "fw")}
        everything = {d["mac"] for d in reader.devices(2000.0, "fw", current=False)}
        fleet = [(d["device_id"], d["ip"]) for d in reader.devices(2000.0)]
        snapshots = reader.snapshots()
    assert set(current) == {"00:1b:17:00:00:01", "00:1b:17:00:00:03"} and "00:1b:17:00:00:02" in everything
    one = current["00:1b:17:00:00:01"]
    assert (one["first_seen"], one["last_seen"], one["static"], one["randomized_mac"]) == (1000.0, 1600.0, False,
                                                                                          False)
    assert fleet == [("fw", "10.0.0.1"), ("fw", "10.0.0.3"), ("fw2", "10.0.0.1")]
    assert snapshots == {"fw": {"ts": 1600.0, "hosts": 2}, "fw2": {"ts": 1900.0, "hosts": 1}}


def test_a_lease_that_ran_out_hides_the_device_and_a_known_dns_name_is_kept(stores, network):
    network.record("fw", 1000.0, [_row("00:1b:17:00:00:01", lease_expires=1100.0, dns_name="a.example",
                                       static=True, randomized_mac=True)])
    network.record("fw", 1300.0, [_row("00:1b:17:00:00:01", lease_expires=1900.0, dns_name=None)])
    with stores.open_network_reader() as reader:
        [d] = reader.devices(1400.0, "fw")
        assert d["dns_name"] == "a.example" and d["lease_expires"] == 1900.0
        assert d["static"] is False and d["randomized_mac"] is False  # the newest snapshot's flags
        assert reader.devices(2000.0, "fw") == []


def test_applications_sum_big_byte_counts_as_whole_numbers(stores, network):
    big = 3 * 2**31  # a busy application in five minutes: past a 32-bit integer
    for i, ts in enumerate((1000.0, 1300.0, 1600.0)):
        network.record_apps("fw", ts, [
            {"name": "ssl", "category": "networking", "risk": 4, "bytes": big, "sessions": 10, "sources": 3 + i},
            {"name": "dns", "category": "networking", "risk": 2, "bytes": 5, "sessions": 7, "sources": 1},
        ], [{"name": "networking", "bytes": big + 5, "sessions": 17}])
    network.record_apps("fw2", 1600.0, [{"name": "dns", "category": "x", "risk": 1, "bytes": 9, "sessions": 1}], [])
    with stores.open_network_reader() as reader:
        apps = reader.applications("fw", 1300.0)
        top = reader.top_application(0.0)
    ssl = apps["applications"][0]
    assert (ssl["name"], ssl["bytes"], ssl["sessions"], ssl["sources"], ssl["risk"]) == ("ssl", 2 * big, 20, 5, 4)
    assert type(ssl["bytes"]) is int and type(ssl["sessions"]) is int
    assert [a["name"] for a in apps["applications"]] == ["ssl", "dns"]
    assert apps["categories"] == [{"name": "networking", "category": None, "risk": None, "bytes": 2 * big + 10,
                                   "sessions": 34, "sources": None}]
    assert apps["timeline"] == [{"ts": 1300.0, "bytes": big + 5, "sessions": 17},
                                {"ts": 1600.0, "bytes": big + 5, "sessions": 17}]
    assert apps["as_of"] == 1600.0 and top == {"fw": "ssl", "fw2": "dns"}


def test_threat_runs_are_summed_with_the_latest_events_first(stores, network):
    def summary(name: str, critical: int):
        return {"counts": {"critical": critical, "high": 0, "medium": 1, "low": 0}, "blocked_urls": 2,
                "latest": [{"kind": "threat", "name": name}, {"kind": "url", "url": name + ".example"}],
                "top_threats": [{"name": name, "count": critical}], "top_url_categories": [{"name": "malware",
                                                                                            "count": 2}]}

    network.record_security("fw", 1000.0, summary("old", 5))
    network.record_security("fw", 2000.0, summary("A", 1))
    network.record_security("fw", 2300.0, summary("B", 2))
    network.record_security("fw", 2300.0, summary("B", 2))  # the same run again: nothing doubled
    with stores.open_network_reader() as reader:
        s = reader.security("fw", 1500.0)
        nothing = reader.security("fw2", 0.0)
        fleet = reader.fleet_summary(1500.0)
    assert s["counts"] == {"critical": 3, "high": 0, "medium": 2, "low": 0} and s["blocked_urls"] == 4
    assert s["runs"] == 2 and s["as_of"] == 2300.0
    assert [e.get("name") or e.get("url") for e in s["latest"]] == ["B", "B.example", "A", "A.example"]
    assert s["top_threats"] == [{"name": "B", "count": 2}, {"name": "A", "count": 1}]
    assert s["top_url_categories"] == [{"name": "malware", "count": 4}]
    assert nothing["counts"] is None and nothing["blocked_urls"] is None and nothing["latest"] == []
    assert fleet == {"fw": {"threats": {"critical": 3, "high": 0, "medium": 2, "low": 0}, "blocked_urls": 4}}


def test_log_entries_are_stored_once_newest_first_with_undated_ones_last(stores, network):
    added = network.record_logs("fw", 1000.0, {
        "system": [{"id": "1", "epoch": 900.0, "opaque": "HA moved to Passive"},
                   {"id": "2", "epoch": None, "opaque": "no time"},
                   {"id": "3", "epoch": 950.0, "opaque": "commit"}],
        "traffic": [{"id": "9", "epoch": 990.0, "app": "ssl"}],
    })
    assert added == 4
    again = {"system": [{"id": "1", "epoch": 900.0}, {"id": "4", "epoch": 1200.0}]}
    assert network.record_logs("fw", 1300.0, again) == 1
    with stores.open_network_reader() as reader:
        entries, fetched = reader.logs("fw", "system", 0.0)
        passive, _ = reader.logs("fw", "system", 0.0, q="passive")
        recent, _ = reader.logs("fw", "system", 940.0, limit=2)
        none, never = reader.logs("fw2", "system", 0.0)
    assert [e["id"] for e in entries] == ["4", "3", "1", "2"] and fetched == 1300.0
    assert entries[2] == {"id": "1", "epoch": 900.0, "opaque": "HA moved to Passive"}
    assert [e["id"] for e in passive] == ["1"] and [e["id"] for e in recent] == ["4", "3"]
    assert none == [] and never is None
    assert network.cleanup_logs(1000.0 + 3600 + 1, 1) == 4 and network.cleanup_logs(1000.0 + 3600 + 1, 1) == 0


def test_retention_forgets_devices_snapshots_and_old_runs(stores, network):
    day = 86400.0
    network.record("fw", 1000.0, [_row("00:1b:17:00:00:01")])
    network.record("fw2", 1000.0 + 20 * day, [_row("00:1b:17:00:00:02")])
    network.record_apps("fw", 1000.0, [{"name": "ssl", "bytes": 1, "sessions": 1}], [])
    network.record_apps("fw", 1000.0 + 30 * day, [{"name": "ssl", "bytes": 1, "sessions": 1}], [])
    network.record_security("fw", 1000.0, {"counts": {"critical": 1}, "latest": [{"name": "x"}],
                                           "top_threats": [{"name": "x", "count": 1}]})
    gone = network.cleanup(1000.0 + 31 * day, 30)
    assert gone == {"connected_devices": 1, "network_snapshots": 1, "app_stats": 1, "security": 3}
    with stores.open_network_reader() as reader:
        assert [d["device_id"] for d in reader.devices(0.0, current=False)] == ["fw2"]
        assert list(reader.snapshots()) == ["fw2"]


def test_the_acc_tops_win_over_the_logs_tops_and_keep_a_threats_highest_severity(stores, network):
    network.record_security("fw", 1000.0, {"counts": {"critical": 1, "high": 0, "medium": 0, "low": 0},
                                           "blocked_urls": 1, "latest": [],
                                           "top_threats": [{"name": "from-logs", "count": 1}],
                                           "top_url_categories": [{"name": "logs-cat", "count": 1}]})
    with stores.open_network_reader() as reader:
        logs_only = reader.security("fw", 0.0)
    assert logs_only["top_threats"] == [{"name": "from-logs", "count": 1}]
    assert logs_only["tops_from"] == {"top_threats": "logs", "top_url_categories": "logs"}
    network.record_acc("fw", 1000.0, [{"name": "SMB RCE", "count": 4, "severity": "low"},
                                      {"name": "Eicar", "count": 2, "severity": "medium"}],
                       [{"name": "malware", "count": 7}], [{"name": "10.0.0.9", "user": "corp\\ann", "bytes": 2**40,
                                                           "sessions": 3}])
    network.record_acc("fw", 1300.0, [{"name": "SMB RCE", "count": 1, "severity": "critical"}], None, None)
    with stores.open_network_reader() as reader:
        s = reader.security("fw", 0.0)
        later = reader.security("fw", 1200.0)
        apps = reader.applications("fw", 0.0)
    assert s["top_threats"] == [{"name": "SMB RCE", "count": 5, "severity": "critical"},
                                {"name": "Eicar", "count": 2, "severity": "medium"}]
    assert s["top_url_categories"] == [{"name": "malware", "count": 7}]
    assert s["tops_from"] == {"top_threats": "acc", "top_url_categories": "acc"}
    # A range whose runs had no URL report answer falls back to the logs' tops (here: none).
    assert later["tops_from"] == {"top_threats": "acc", "top_url_categories": "logs"}
    assert apps["sources"] == [{"name": "10.0.0.9", "user": "corp\\ann", "bytes": 2**40, "sessions": 3}]
    assert apps["applications"] == [] and apps["timeline"] == []  # sources are not applications
