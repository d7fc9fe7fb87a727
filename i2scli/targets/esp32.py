"""Classic ESP32 boards (DevKitC and the like): the esp32 port, its REPL on UART0 behind a
USB-UART bridge (i2scli/link/baud.py moves it to the bridge's fastest rate)."""

from i2scli.targets.base import Bridge, Pins, Target

# USB-UART bridges by VID:PID. The rates are each datasheet's maximum that Linux/macOS/Windows
# drivers set exactly. A CP2102N shares the CP2102's VID:PID and is told by its product string.
BRIDGES = {
    (0x10C4, 0xEA60): Bridge("CP2102/CP2104", 921600, "Silicon Labs CP2102 datasheet: 300 bps to 1 Mbps; "
                             "921600 is its highest standard rate (AN205 baud table)"),
    (0x10C4, 0xEA70): Bridge("CP2105", 2000000, "CP2105 datasheet: ECI up to 2 Mbps"),
    (0x1A86, 0x7523): Bridge("CH340", 2000000, "WCH CH340 datasheet: 50 bps to 2 Mbps"),
    (0x1A86, 0x55D4): Bridge("CH9102", 3000000, "WCH CH9102 datasheet: 50 bps to 4 Mbps"),
    (0x0403, 0x6001): Bridge("FT232R", 3000000, "FTDI FT232R datasheet: 300 baud to 3 Mbaud"),
    (0x0403, 0x6010): Bridge("FT2232H", 3000000, "FTDI FT2232H datasheet: up to 12 Mbaud; ESP32 boards "
                             "(ESP-Prog) run it at 3 Mbaud or less"),
    (0x0403, 0x6015): Bridge("FT231X", 3000000, "FTDI FT231X datasheet: up to 3 Mbaud"),
}
CP2102N = Bridge("CP2102N", 3000000, "Silicon Labs CP2102N datasheet: up to 3 Mbaud (same VID:PID as CP2102; "
                 "told apart by its product string)")


# what `i2s devices` calls a port behind one of them
BRIDGE_LABELS = {(0x10C4, 0xEA60): "Silicon Labs CP210x UART bridge", (0x1A86, None): "WCH CH340/CH9102 UART bridge",
                 (0x0403, None): "FTDI UART bridge"}


class Esp32(Target):
    NAME = "esp32"
    DESCRIPTION = "ESP32 DevKit: I2S(0), SCK 32, WS 25, SD 33"
    PLATFORM = "esp32"
    TX = RX = Pins(0, 32, 25, 33)
    LOOP = (Pins(0, 32, 25, 33), Pins(1, 14, 27, 26))  # not checked on hardware
    DIR_PIN = 4
    BRIDGES = BRIDGES
    STDIN_RING = 256  # the agent's credit window: under the port's 260-byte stdin ring (docs/sim.md)
    IDF_DMA_FRAMES = 256  # ports/esp32/machine_i2s.c DMA_BUF_LEN_IN_I2S_FRAMES


TARGETS = (Esp32,)
