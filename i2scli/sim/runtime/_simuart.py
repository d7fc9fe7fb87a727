# The virtual board's machine.UART (MicroPython code, runs inside the unix port).
import _chan
from _simport import _get_int, _type_name  # noqa: F401
from _simpin import Pin  # noqa: F401

# ---------------------------------------------------------------------------
# UART (esp32 port only: profiles with profile["uart_repl"])
# ---------------------------------------------------------------------------
# Argument checks and texts of ports/esp32/machine_uart.c (v1.28.0). UART(0) is
# the REPL UART (MICROPY_HW_UART_REPL 0): its baudrate can be changed at run
# time (since v1.19, commit 919e586e), which re-times the link the host talks
# over: the change is sent to the model as the event
#   {"ev": "uart", "id": 0, "repl": true, "baudrate": N, ...}
# and the call waits for the model's one-byte reply on fd 4, so output printed
# before the call leaves at the old rate. Its buffers are fixed, it has no irq,
# and read/write go nowhere (the IDF driver is not installed on the REPL UART:
# uart_read_bytes/uart_write_bytes fail, so read() and write() return None).
# UART(1), UART(2) are not wired to anything in the simulator: writes vanish,
# reads find nothing.
_UART_NUM = 3  # SOC_UART_NUM on ESP32 and ESP32-S3
_UART_OBJS = [None] * _UART_NUM
_UART_PARITY = ("None", "1", "0")


class UART:
    INV_TX = 1 << 5  # UART_SIGNAL_TXD_INV
    INV_RX = 1 << 2  # UART_SIGNAL_RXD_INV
    INV_RTS = 1 << 6
    INV_CTS = 1 << 3
    RTS = 1  # UART_HW_FLOWCTRL_RTS
    CTS = 2
    IRQ_RX = 1
    IRQ_RXIDLE = 0x1000
    IRQ_BREAK = 2

    def __new__(cls, id, *args, **kw):
        n = _get_int(id)
        if n < 0 or n >= _UART_NUM:
            raise ValueError("UART(%d) does not exist" % n)
        self = _UART_OBJS[n]
        if self is None:
            self = object.__new__(cls)
            self._id = n
            self._installed = False
            self._baud = 115200
        self.init(*args, **kw)
        _UART_OBJS[n] = self
        return self

    def __init__(self, id, *args, **kw):
        pass

    def init(self, baudrate=0, bits=0, parity=None, stop=0, *, tx=None, rx=None, rts=None,
             cts=None, txbuf=-1, rxbuf=-1, timeout=-1, timeout_char=-1, invert=-1, flow=-1):
        repl = self._id == 0
        if not self._installed:
            self._bits, self._parity, self._stop = 8, 0, 1
            self._tx, self._rx = ((-1, -1), (10, 9), (17, 16))[self._id]
            self._rts = self._cts = -1
            self._txbuf = self._rxbuf = 256
            self._timeout = self._timeout_char = 0
            self._invert = self._flow = 0
        if (txbuf >= 0 and txbuf != self._txbuf) or (rxbuf >= 0 and rxbuf != self._rxbuf):
            if repl:
                raise ValueError("REPL UART buffer size is fixed")
            if txbuf >= 0:
                self._txbuf = txbuf
            if rxbuf >= 0:
                self._rxbuf = rxbuf
        self._installed = True
        baudrate = _get_int(baudrate)
        if bits:
            if bits not in (5, 6, 7, 8):
                raise ValueError("invalid data bits")
            self._bits = bits
        if parity is not None:
            self._parity = 1 if _get_int(parity) & 1 else 2
        if stop:
            if stop not in (1, 2):
                raise ValueError("invalid stop bits")
            self._stop = stop
        for name, v in (("_tx", tx), ("_rx", rx), ("_rts", rts), ("_cts", cts)):
            if v is not None:
                setattr(self, name, v._id if isinstance(v, Pin) else _get_int(v))
        if timeout >= 0:
            self._timeout = timeout
        if timeout_char >= 0:
            self._timeout_char = timeout_char
        if invert >= 0:
            if invert & ~(UART.INV_TX | UART.INV_RX | UART.INV_RTS | UART.INV_CTS):
                raise ValueError("invalid inversion mask")
            self._invert = invert
        if flow >= 0:
            if flow & ~(UART.RTS | UART.CTS):
                raise ValueError("invalid flow control mask")
            self._flow = flow
        if baudrate > 0:
            self._baud = baudrate
            if repl:
                _chan.event("uart", id=0, repl=True, baudrate=baudrate, bits=self._bits,
                            parity=_UART_PARITY[self._parity], stop=self._stop)
                _chan.wait_reply()

    def deinit(self):
        if self._id != 0:
            self._installed = False

    def __repr__(self):
        return ("UART(%u, baudrate=%u, bits=%u, parity=%s, stop=%u, tx=%d, rx=%d, rts=%d, "
                "cts=%d, txbuf=%u, rxbuf=%u, timeout=%u, timeout_char=%u, irq=0)") % (
            self._id, self._baud, self._bits, _UART_PARITY[self._parity], self._stop,
            self._tx, self._rx, self._rts, self._cts, self._txbuf, self._rxbuf,
            self._timeout, self._timeout_char)

    def irq(self, *args, **kw):
        if self._id == 0:
            raise ValueError("REPL UART does not support IRQs")
        raise ValueError("trigger 0x0000 unsupported")

    def any(self):
        return 0

    def read(self, n=-1):
        return None

    def readinto(self, buf, n=-1):
        return None

    def readline(self):
        return None

    def write(self, buf):
        if self._id == 0:
            return None
        return len(buf)

    def flush(self):
        pass

    def txdone(self):
        return True

    def sendbreak(self):
        pass
