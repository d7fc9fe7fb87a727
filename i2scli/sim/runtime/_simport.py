# The port the virtual board imitates (MicroPython code, runs inside the unix port): its family
# and rules, set once at boot by machine._configure, and what the pin, I2S and UART models
# (_simpin.py, _simi2s.py, _simuart.py) share. Rebound names are read as attributes of this
# module (_port.family), so every model sees the configured value.
profile = None
family = "rp2"  # stm32 | rp2 | esp32 | mimxrt | alif
rules = None  # the profile's I2S rules (None: no machine.I2S)
freq = 125000000
npend = 0  # I2S objects with non-blocking work pending (_simi2s)
service = None  # _simi2s._service_all(now): Pin calls service pending I2S work too

_EPERM = 1
_EINVAL = 22


def _type_name(x):
    return type(x).__name__


def _get_int(v):
    if isinstance(v, int):
        return int(v)
    raise TypeError("can't convert %s to int" % _type_name(v))


def configure(prof):
    """The family and CPU clock of the profile's port."""
    global profile, family, rules, freq
    profile = prof
    plat = prof.get("platform")
    machine_str = prof.get("machine") or ""
    if plat == "pyboard":
        family = "stm32"
    elif plat in ("rp2", "esp32", "mimxrt", "alif"):
        family = plat
    else:
        family = "rp2"
    rules = prof.get("i2s")
    freq = {"stm32": 480000000 if "H7" in machine_str else 168000000,
            "rp2": 125000000, "esp32": 160000000, "mimxrt": 600000000,
            "alif": 400000000}[family]
