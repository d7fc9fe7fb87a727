import pytest

from i2scli.sim.faults import parse_fault
from i2scli.units import parse_duration


@pytest.mark.parametrize("text,seconds", [("1ms", 1e-3), ("250us", 250e-6), ("2s", 2.0), ("1.5", 1.5),
                                          ("0", 0.0), (".5ms", 5e-4), ("1min", 60.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1xs", "-3ms", "", "ms", "1 ms s", "nan", "1e3"])
def test_bad_durations_are_one_line_errors(text):
    with pytest.raises(ValueError) as e:
        parse_duration(text)
    assert "\n" not in str(e.value) and "invalid duration" in str(e.value)


def test_fault_specs():
    f = parse_fault("corrupt:offset=0x10,xor=0x01,dir=out")
    assert (f.kind, f.offset, f.xor, f.direction) == ("corrupt", 16, 1, "out")
    f = parse_fault("stall:at=2s,for=500ms")
    assert (f.at, f.duration) == (2.0, 0.5)
    assert parse_fault("unplug:offset=100").offset == 100


@pytest.mark.parametrize("spec", ["bogus", "drop", "drop:at=1s", "stall:at=1s", "drop:offset=-1",
                                  "drop:offset=x", "unplug:at=1xs", "drop:offset=1,dir=sideways", "drop:wat"])
def test_bad_fault_specs(spec):
    with pytest.raises(ValueError) as e:
        parse_fault(spec)
    assert "\n" not in str(e.value)
