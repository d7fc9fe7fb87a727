"""The board's switch timeline (ticks_us per step) as text and as a VCD trace."""

from __future__ import annotations

# step name on the board -> what people call it
STEPS = {
    "rx_stop": "RX stopped", "rx_deinit": "RX deinit", "tx_deinit": "TX deinit", "sd_released": "SD released",
    "dir_tx": "DIR to TX", "dir_rx": "DIR to RX", "delay_done": "delay done", "tx_init": "TX started",
    "rx_init": "RX started", "lead_in_done": "lead-in done", "first_audio": "first audio", "rx_kept": "RX kept",
    "drain": "play-out", "deinit": "deinit",
}
SWITCH_STEPS = ("rx_stop", "rx_deinit", "tx_deinit", "sd_released", "dir_tx", "dir_rx", "delay_done", "tx_init",
                "rx_init", "lead_in_done", "first_audio", "rx_kept")


def relative(timeline: list) -> list[tuple[str, int]]:
    """[(step, µs since the first step)]."""
    if not timeline:
        return []
    t0 = timeline[0][1]
    return [(name, t - t0) for name, t in timeline]


def switches(timeline: list) -> list[list[tuple[str, int]]]:
    """The steps of each switch, relative to the step that began it (a deinit)."""
    out, current = [], None
    for name, t in timeline:
        if name in ("rx_deinit", "tx_deinit") or (name == "rx_stop" and current is None):
            if current and name != "rx_deinit":
                out.append(current)
            if current is None or name != "rx_deinit":
                current = [(name, t)]
                continue
        if current is not None and name in SWITCH_STEPS:
            current.append((name, t))
            if name in ("first_audio", "rx_kept"):
                out.append(current)
                current = None
    if current:
        out.append(current)
    return [[(n, t - sw[0][1]) for n, t in sw] for sw in out]


def describe_switch(steps: list[tuple[str, int]]) -> str:
    return ", ".join(f"{STEPS.get(n, n)} +{t / 1000:.3f} ms" for n, t in steps)


def write_vcd(path: str, timeline: list, dir_rx_level: int = 0) -> None:
    """Board-side view of each step: RX and TX clocks, DIR, who the board lets drive SD."""
    rel = relative(timeline)
    state = {"rx": 0, "tx": 0, "dir": "x", "drive": 0, "audio": 0}
    ids = {"rx": "!", "tx": '"', "dir": "#", "drive": "$", "audio": "%"}
    with open(path, "w") as f:
        f.write("$version i2s duplex timeline (board ticks_us) $end\n$timescale 1us $end\n$scope module board $end\n")
        f.write('$var wire 1 ! rx_clock $end\n$var wire 1 " tx_clock $end\n$var wire 1 # dir $end\n')
        f.write("$var wire 1 $ board_drives_sd $end\n$var wire 1 % tx_audio $end\n")
        f.write("$upscope $end\n$enddefinitions $end\n")
        f.write("#0\n$dumpvars\n" + "\n".join(f"{v}{ids[k]}" for k, v in state.items()) + "\n$end\n")
        last_t = 0
        for name, t in rel:
            change = {}
            if name == "rx_init":
                change = {"rx": 1}
            elif name in ("rx_deinit",):
                change = {"rx": 0}
            elif name == "tx_init":
                change = {"tx": 1, "drive": 1}
            elif name in ("tx_deinit", "deinit"):
                change = {"tx": 0, "rx": 0, "audio": 0}
            elif name == "sd_released":
                change = {"drive": 0}
            elif name == "dir_rx":
                change = {"dir": dir_rx_level}
            elif name == "dir_tx":
                change = {"dir": 1 - dir_rx_level}
            elif name == "first_audio":
                change = {"audio": 1}
            diff = {k: v for k, v in change.items() if state[k] != v}
            if diff:
                state.update(diff)
                f.write(f"#{t}\n" + "\n".join(f"{v}{ids[k]}" for k, v in diff.items()) + "\n")
            last_t = t
        f.write(f"#{last_t + 1}\n")
