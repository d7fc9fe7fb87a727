"""The bus model on its own: who drives SD, conflicts, clock gaps, VCD."""

import numpy as np
import pytest

from i2scli.sim.bus import BusModel, Session


def half_duplex(switch_delay_us, release_us=500):
    """RX, then the safe switch to TX with a given delay between DIR and TX start."""
    bus = BusModel(dir_pin="P4", dir_rx_level=0, drive_delay_us=200, release_delay_us=release_us,
                   sd_net={"P0", "P1"})
    bus.pin_mode("P4", "out", 0, 1000)  # DIR: codec drives
    bus.pin_mode("P0", "in", 0, 1000)
    bus.i2s_init(Session(1, "rx", "P1", 48000, 32, 2, 2000))
    bus.i2s_deinit(1, 50_000)
    bus.pin_value("P4", 1, 50_010)  # DIR: codec listens; it lets go 500 us later
    bus.i2s_init(Session(2, "tx", "P0", 48000, 32, 2, 50_020 + switch_delay_us))
    bus.i2s_deinit(2, 90_000)
    return bus


def test_switch_without_delay_conflicts():
    bus = half_duplex(0)
    (start, end), = bus.conflicts(100_000)
    assert (start, end) == (50_020, 50_510)


def test_switch_with_delay_is_clean():
    assert half_duplex(1000).conflicts(100_000) == []


def test_clock_gap_is_measured():
    assert half_duplex(1000).clock_gaps() == [(50_000, 51_020)]


def test_rx_reads_codec_only_while_it_drives():
    bus = half_duplex(1000)
    states = bus.rx_states(np.array([1100, 1300, 40_000, 50_600]))
    # before drive delay: floating; driving: data; after release: floating
    assert states.tolist() == [1, 0, 0, 1]


def test_no_dir_pin_means_plain_codec():
    bus = BusModel(dir_pin="P4")
    bus.i2s_init(Session(1, "rx", "P1", 8000, 16, 1, 0))
    assert bus.rx_states(np.array([10, 20])).tolist() == [0, 0]
    bus.i2s_init(Session(2, "tx", "P0", 8000, 16, 1, 30))
    assert bus.conflicts(100) == []


def test_vcd_parses(tmp_path):
    vcdvcd = pytest.importorskip("vcdvcd")
    bus = half_duplex(0)
    path = tmp_path / "bus.vcd"
    bus.write_vcd(str(path), 0, 100_000)
    vcd = vcdvcd.VCDVCD(str(path))
    conflict = vcd["board.conflict"].tv
    assert (50_020, "1") in conflict and (50_510, "0") in conflict
    assert vcd["board.bclk"].tv[-1] == (90_000, "0")
