"""Uplink In/Out pairs interface rows with their device sample by the poll's whole second (schema 9).

A device row keeps its poll's exact time in milliseconds, an interface row of the same poll only
its whole second: the live value and the raw chart points must still find each other, and an
interface row of another second must still not be taken for this sample's.
"""

from helpers.storage import T0, cycle, iface

from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore
from panfm.web import uplinks

UPLINKS = ("ethernet1/1", "ethernet1/2")


def _write(db, polls):
    with SampleStore.open(db) as store:
        for ts in polls:
            store.write_cycle(cycle(ts, ifaces=UPLINKS))


def test_the_live_value_and_raw_points_pair_interfaces_of_the_same_poll_second(tmp_path):
    db = tmp_path / HISTORY_DB
    polls = [T0 + 30 * i + 0.923 for i in range(4)]  # milliseconds that a whole second drops
    _write(db, polls)
    with SampleReader.open(db) as r:
        sample = r.latest("fw1")
        assert sample is not None and sample.ts == polls[-1]
        live = uplinks.live(r, "fw1", UPLINKS, sample)
        assert live == {"uplink_in_mbps": 2.0, "uplink_out_mbps": 4.0}  # 1 + 1 Mb/s in, 2 + 2 out
        hist = r.history("fw1", T0 - 60, T0 + 600)
        assert hist.tier == "raw" and [p["t"] for p in hist.points] == polls
        uplinks.add_history(r, "fw1", UPLINKS, T0 - 60, T0 + 600, 2000, hist.points)
        assert [p["uplink_in_mbps"] for p in hist.points] == [2.0] * 4


def test_an_interface_row_of_another_second_is_not_this_samples(tmp_path):
    db = tmp_path / HISTORY_DB
    _write(db, [T0 + 0.5])
    with SampleStore.open(db) as store:  # a newer sample whose poll read one uplink only
        late = cycle(T0 + 30.5, ifaces=())
        store.write_cycle(late.__class__(late.started, late.finished, late.samples,
                                         (iface("fw1", "ethernet1/1", T0 + 30.5),), (), late.statuses))
    with SampleReader.open(db) as r:
        sample = r.latest("fw1")
        assert sample is not None and sample.ts == T0 + 30.5
        assert uplinks.live(r, "fw1", UPLINKS, sample) == {"uplink_in_mbps": None, "uplink_out_mbps": None}
