"""The board and its link, as `i2s info` shows them, and opening a board for any command.

No numpy here: `i2s info` starts as fast as the port and the board allow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from i2scli import ports, protocol
from i2scli.link import Agent, connect
from i2scli.targets import boards

RX_PAYLOAD = 4096  # audio bytes per DATA frame from the board (no credits that way): fewer, cheaper frames
MAX_TX_PAYLOAD = protocol.MAX_TX_PAYLOAD


@contextmanager
def board(port: str | None, *, timeout: float = 10.0, baud: str | int = "auto",
          warn: Callable[[str], None] | None = None, expect: dict | None = None) -> Iterator[Agent]:
    """The agent on the board at `port` (or the single attached board); on a UART link at the
    rate `baud` asks for (auto: the fastest its USB-serial bridge takes; off; a rate); `expect`:
    the stream that will run (`connect`)."""
    with connect(ports.resolve(port), timeout=timeout, baud=baud, warn=warn, expect=expect) as agent:
        yield agent



def info(agent: Agent, port: str, probe: bool = True) -> dict:
    """What the board is and which standard streams its link carries."""
    h = agent.hello
    out = {"port": port, "board": agent.describe(), "platform": h.get("platform"), "machine": h.get("machine"),
           "micropython": h.get("micropython"), "i2s": h.get("i2s"), "mem_free": h.get("mem_free"),
           "agent": {"version": h.get("agent"), "source": h.get("source"),
                     "installed": h.get("source") == "installed"},
           "input_buffer": h.get("inbuf"), "crc": h.get("crc"), "io_styles": h.get("io"),
           # the lossless wire coder: installed, loaded when a stream needs it, or not possible (no viper)
           "wire_coder": "installed" if h.get("codec") else "on demand" if h.get("native") else None}
    preset = boards.detect(h)
    out["preset"] = preset.name if preset else None
    out["link"] = {"baud": agent.baud}  # None: the link has no baud rate (native USB, socket://)
    if probe:
        rates = agent.link_rates(fresh=True)  # info measures; what it measured is remembered
        out["link"].update(up_bytes_per_s=round(rates["up"]), down_bytes_per_s=round(rates["down"]))
        fits = []
        for rate in (8000, 16000, 22050, 44100, 48000):
            for bits in (16, 32):
                for ch in (1, 2):
                    fb = bits // 8 * ch
                    tx_payload = protocol.tx_payload(h.get("inbuf", 256), fb)
                    play_need = protocol.stream_rate(rate, bits, ch, tx_payload) if tx_payload > 0 else float("inf")
                    rec_need = protocol.stream_rate(rate, bits, ch, RX_PAYLOAD // fb * fb)
                    fits.append({"stream": f"{rate} Hz {bits}-bit {'stereo' if ch == 2 else 'mono'}",
                                 "play": play_need <= rates["up"] * 0.9,
                                 "record": rec_need <= rates["down"] * 0.9})
        out["fits"] = fits
    return out
