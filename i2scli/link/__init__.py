"""Reaching the board: the port, getting the agent running, one framed stream, the modes.

    with connect("sim://rp2") as agent:
        print(agent.hello["machine"])
        summary = agent.play(config, blocks)

Rooms, in the order data flows through them: `port` (pyserial URLs, exclusive open),
`launch` (raw REPL, upload or installed copy, HELLO; `install`), `stream` (START/READY,
credits, watchdog, SUMMARY), `modes` and `duplex` (thin layers over a stream), and `agent`
(the object the commands hold). The raw REPL work is mpremote's serial transport; the framed,
credit-controlled stream is ours (docs/protocol.md).
"""

from i2scli.link.agent import LINK_HEADROOM, Agent, connect
from i2scli.link.agent_code import AGENT_NAME, agent_chunks, agent_source, agent_version, compile_agent
from i2scli.link.errors import BoardError, LinkError, NoDevice, TooFast
from i2scli.link.launch import install
from i2scli.link.port import open_transport
from i2scli.link.stream import DEFAULT_TIMEOUT_MS

__all__ = ["AGENT_NAME", "DEFAULT_TIMEOUT_MS", "LINK_HEADROOM", "Agent", "BoardError", "LinkError", "NoDevice",
           "TooFast", "agent_chunks", "agent_source", "agent_version", "compile_agent", "connect", "install",
           "open_transport"]
