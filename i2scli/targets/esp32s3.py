"""ESP32-S3 boards on their own USB port (the esp32 port; USB Serial/JTAG or TinyUSB CDC)."""

from i2scli.targets.base import Pins
from i2scli.targets.esp32 import Esp32


class Esp32S3(Esp32):
    NAME = "esp32s3"
    DESCRIPTION = "ESP32-S3 DevKitC: I2S(0), SCK 5, WS 6, SD 7"
    PRIORITY = 1
    # any GPIO works on the S3 (its I2S goes through the GPIO matrix); 26-32 belong to the flash
    TX = RX = Pins(0, 5, 6, 7)
    LOOP = (Pins(0, 5, 6, 7), Pins(1, 15, 16, 17))
    USB_IDS = {(0x303A, None): "Espressif native USB"}

    @classmethod
    def matches(cls, hello: dict) -> bool:
        return hello.get("platform") == cls.PLATFORM and "ESP32S3" in hello.get("machine", "").replace("-", "").upper()


TARGETS = (Esp32S3,)
