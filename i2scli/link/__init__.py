"""Reaching the board: the port, getting the agent running, one framed stream, the modes.

    with connect("sim://rp2") as agent:
        print(agent.hello["machine"])
        summary = agent.play(config, blocks)

Rooms, in the order data flows through them: `port` (pyserial URLs, exclusive open),
`launch` (raw REPL, upload or installed copy, HELLO; `install`), `baud` (faster UART links),
`stream` (START/READY, credits, watchdog, SUMMARY), `coding` (the lossless wire coder on a
stream), `modes` and `duplex` (thin layers over a stream), and `agent` (the object the
commands hold). The raw REPL work is mpremote's serial transport; the framed,
credit-controlled stream is ours (docs/protocol.md).

Names are imported when first used: `i2s devices` must not pay for numpy, which the coder needs.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "LINK_HEADROOM": "agent", "Agent": "agent", "connect": "agent",
    "AGENT_MODULES": "agent_code", "AGENT_NAME": "agent_code", "CORE_MODULES": "agent_code",
    "upload_chunks": "agent_code",
    "agent_source": "agent_code",
    "agent_version": "agent_code", "compile_agent": "agent_code",
    "BoardError": "errors", "LinkError": "errors", "NoDevice": "errors", "TooFast": "errors",
    "install": "launch", "open_transport": "port", "DEFAULT_TIMEOUT_MS": "stream",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
