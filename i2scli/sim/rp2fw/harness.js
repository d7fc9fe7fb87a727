'use strict';
// The firmware board's emulator side: a real RP2040 firmware image in rp2040js, with
//  - PIO stepped in lock-step with the emulated clock (each enabled state machine every clkdiv x 8 ns,
//    instruction delays honoured), instead of rp2040js's fixed batch per setTimeout;
//  - the USB CDC host holding each OUT poll until host bytes are there (flow control), with no FIFO
//    limit of its own: the host is paused when its queue is long;
//  - the emulated clock never ahead of the wall clock when the core sleeps;
//  - the I2S pins decoded (TX: SCK/WS/SD into slots) and driven (RX: SD from a source) as clocked.
// Started by i2scli/sim/firmware_board.py: host bytes on stdin, board bytes on stdout, events as JSON
// lines on the fd cfg.events_fd, configuration as JSON in argv[2].

const fs = require('fs');
const path = require('path');

const cfg = JSON.parse(process.argv[2]);
const { RP2040, USBCDC, ConsoleLogger, LogLevel } = require(path.join(cfg.modules, 'rp2040js'));

const CYCLE_NS = 8; // 125 MHz clk_sys, as rp2040js's Simulator assumes
const FLASH_START = 0x10000000;
const HOST_QUEUE_MAX = 64 * 1024; // bytes held here before the host is paused
// A sleeping core's clock may run this far ahead of the wall clock, no further: far enough that the
// next USB alarm (10 us away) does not cost a timer's millisecond, near enough that no host timeout
// the board keeps sees the host late.
const LEAD_NS = 2e6;

function event(obj) {
  obj.t_ns = Math.round(mcu.clock.nanos);
  try {
    fs.writeSync(cfg.events_fd, JSON.stringify(obj) + '\n');
  } catch (e) {
    /* the board model is gone */
  }
}

// -- the chip and its images -------------------------------------------------------------------
const mcu = new RP2040();
mcu.logger = new ConsoleLogger(LogLevel.Error);
{
  const rom = fs.readFileSync(cfg.bootrom);
  mcu.loadBootrom(new Uint32Array(rom.buffer, rom.byteOffset, rom.length >> 2));
}

function loadFirmware(file) {
  const data = fs.readFileSync(file);
  if (data.length >= 512 && data.readUInt32LE(0) === 0x0a324655 && data.readUInt32LE(4) === 0x9e5d5157) {
    for (let off = 0; off + 512 <= data.length; off += 512) {
      const addr = data.readUInt32LE(off + 12);
      const size = data.readUInt32LE(off + 16);
      if (data.readUInt32LE(off) !== 0x0a324655 || (data.readUInt32LE(off + 8) & 1)) continue; // not main flash
      mcu.flash.set(data.subarray(off + 32, off + 32 + size), addr - FLASH_START);
    }
    return;
  }
  if (data.length >= 52 && data.readUInt32BE(0) === 0x7f454c46) {
    const phoff = data.readUInt32LE(28);
    const phentsize = data.readUInt16LE(42);
    const phnum = data.readUInt16LE(44);
    for (let i = 0; i < phnum; i++) {
      const p = phoff + i * phentsize;
      const type = data.readUInt32LE(p);
      const offset = data.readUInt32LE(p + 4);
      const paddr = data.readUInt32LE(p + 12);
      const filesz = data.readUInt32LE(p + 16);
      if (type === 1 && filesz && paddr >= FLASH_START && paddr < FLASH_START + mcu.flash.length) {
        mcu.flash.set(data.subarray(offset, offset + filesz), paddr - FLASH_START);
      }
    }
    return;
  }
  mcu.flash.set(data, 0); // a raw image of flash from its start (firmware.bin)
}
loadFirmware(cfg.firmware);
mcu.core.PC = FLASH_START; // boot2 at the start of flash, as rp2040js's own demo starts it

const clock = mcu.clock;
const core = mcu.core;

// -- USB CDC: a host that holds each OUT poll until it has bytes ---------------------------------
const cdc = new USBCDC(mcu.usbCtrl);
const hostQueue = [];
let hostQueued = 0;
let pendingRead = null; // {endpoint, size}: the device's OUT poll waiting for host bytes
let inBytes = 0;
let outBytes = 0;
let connected = false;

// -- stall faults: the link carries nothing either way for a while (emulated time) --------------
// {offset: host bytes delivered before it, or at_ns: emulated time, for_ns}; the board's output
// written meanwhile is held and reaches the host when the stall ends.
const stalls = (cfg.stalls || []).map((f) => ({ ...f, fired: false }));
let stallUntil = 0;
const outHeld = [];

function startStall(f) {
  f.fired = true;
  stallUntil = clock.nanos + f.for_ns;
  event({ ev: 'fault', kind: 'stall', in_bytes: inBytes, for_ns: f.for_ns });
}

function checkStalls() {
  // from the run loop: a stall due by time begins, one that is over ends
  if (stallUntil && clock.nanos >= stallUntil) {
    stallUntil = 0;
    event({ ev: 'fault_end', kind: 'stall', in_bytes: inBytes });
    while (outHeld.length) writeOut(outHeld.shift());
    deliver();
  }
  for (const f of stalls) {
    if (!f.fired && f.at_ns !== undefined && clock.nanos >= f.at_ns && !stallUntil) startStall(f);
  }
}

function deliver() {
  if (!pendingRead || hostQueued === 0 || stallUntil) return;
  let n = Math.min(pendingRead.size, hostQueued);
  for (const f of stalls) {
    if (f.fired || f.offset === undefined) continue;
    if (inBytes >= f.offset) {
      startStall(f);
      return;
    }
    n = Math.min(n, f.offset - inBytes); // the bytes before the stall, not one more
  }
  const { endpoint } = pendingRead;
  pendingRead = null;
  const buf = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const head = hostQueue[0];
    const take = Math.min(head.length, n - got);
    buf.set(head.subarray(0, take), got);
    got += take;
    if (take === head.length) hostQueue.shift();
    else hostQueue[0] = head.subarray(take);
  }
  hostQueued -= n;
  inBytes += n;
  mcu.usbCtrl.endpointReadDone(endpoint, buf);
  if (hostQueued < HOST_QUEUE_MAX / 4 && process.stdin.isPaused()) process.stdin.resume();
}

mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
  if (endpoint !== cdc.outEndpoint) return;
  pendingRead = { endpoint, size };
  deliver();
};
cdc.onDeviceConnected = () => {
  connected = true;
  event({ ev: 'usb_connected' });
};
cdc.onSerialData = (data) => {
  outBytes += data.length;
  if (stallUntil) {
    outHeld.push(Uint8Array.from(data));
    return;
  }
  writeOut(data);
};
function writeOut(data) {
  try {
    fs.writeSync(1, data);
  } catch (e) {
    if (e.code !== 'EAGAIN') shutdown('stdout closed');
    else fs.writeSync(1, data); // a full pipe: wait for the host side to read
  }
}

process.stdin.on('data', (chunk) => {
  hostQueue.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
  hostQueued += chunk.length;
  if (hostQueued > HOST_QUEUE_MAX) process.stdin.pause();
  deliver();
  wake();
});
process.stdin.on('end', () => shutdown('host gone'));

// -- I2S on the pins -----------------------------------------------------------------------------
// rx source: raw little-endian int32 slots (left, right, ...) prepared by the board model, or zeros.
let rxSlots = null;
if (cfg.rx_raw) {
  const b = fs.readFileSync(cfg.rx_raw);
  rxSlots = new Int32Array(b.buffer, b.byteOffset, b.length >> 2);
}
const loopFifo = []; // loopback: TX frames as decoded, waiting for the RX bus ([left, right] int32, left-justified)

let captureFd = cfg.tx_raw ? fs.openSync(cfg.tx_raw, 'w') : null;
const capBuf = Buffer.alloc(64 * 1024);
let capLen = 0;
function capFlush() {
  if (captureFd !== null && capLen) {
    fs.writeSync(captureFd, capBuf, 0, capLen);
    capLen = 0;
  }
}

class Bus {
  // one state machine running machine.I2S: decodes or drives its pins at every step
  constructor(pio, smIndex, sm) {
    const pinCtrl = sm.pinCtrl;
    this.pio = pio;
    this.sm = sm;
    this.id = `pio${pio.index}.sm${smIndex}`;
    this.sck = (pinCtrl >>> 10) & 0x1f;
    this.ws = (this.sck + 1) & 0x1f;
    this.tx = ((pinCtrl >>> 20) & 0x3f) > 0; // OUT pins: a transmitter
    this.sd = this.tx ? pinCtrl & 0x1f : (pinCtrl >>> 15) & 0x1f;
    this.lastSck = 0;
    this.wsAtRise = 0;
    this.wsLatched = 0;
    this.chan = -1;
    this.word = 0;
    this.nbits = 0;
    this.left = 0;
    this.leftBits = 0;
    this.bits = 0; // bits per slot, learned from the first whole slot
    this.frames = 0;
    this.frame = -1; // RX: frame being driven
    this.rxWord = 0;
    this.rxBit = 0;
    const div = (sm.clockDivInt || 65536) + sm.clockDivFrac / 256;
    this.div = div;
    this.started = false;
    this.firstNs = clock.nanos;
    // RX: the program starts with SCK low (its first instruction's side-set), so the codec puts the
    // first slot's MSB on SD now, before the first rising edge samples it
    if (!this.tx) this.rxFall();
  }

  start(bits) {
    this.bits = bits;
    // PIO programs of machine_i2s.c: 2 instructions per bit, 2 slots per frame
    this.rate = 125e6 / (this.div * 2 * 2 * bits);
    this.started = true;
    event({ ev: this.tx ? 'tx_start' : 'rx_start', bus: this.id, sck: this.sck, ws: this.ws, sd: this.sd,
            bits, rate: Math.round(this.rate), rate_exact: this.rate, clkdiv: this.div });
  }

  check(values) {
    const sck = (values >>> this.sck) & 1;
    if (sck === this.lastSck) return;
    this.lastSck = sck;
    if (this.tx) {
      if (sck) this.txRise(values);
    } else if (sck) {
      this.wsLatched = (values >>> this.ws) & 1; // the codec latches WS at the rising edge
    } else {
      this.rxFall();
    }
  }

  txRise(values) {
    // the bit at this rising edge belongs to the slot WS named at the previous rising edge
    const ch = this.wsAtRise;
    const sd = (values >>> this.sd) & 1;
    this.wsAtRise = (values >>> this.ws) & 1;
    if (ch !== this.chan) {
      if (this.chan >= 0) this.endSlot();
      this.chan = ch;
      this.word = 0;
      this.nbits = 0;
    }
    this.word = ((this.word << 1) | sd) >>> 0;
    this.nbits++;
  }

  endSlot() {
    if (this.chan === 0) {
      this.left = this.word;
      this.leftBits = this.nbits;
      return;
    }
    if (this.leftBits === 0) return; // a right slot before any left one: the bus's first half frame
    const bits = this.nbits;
    if (!this.started) {
      if (bits !== this.leftBits || (bits !== 16 && bits !== 32)) return; // the first partial frame
      this.start(bits);
    }
    this.frames++;
    let l = this.left | 0;
    let r = this.word | 0;
    if (this.bits === 16) {
      l <<= 16; // slots left-justified in 32 bits: the capture and the loopback keep one format
      r <<= 16;
    }
    if (captureFd !== null) {
      if (capLen + 8 > capBuf.length) capFlush();
      capBuf.writeInt32LE(l, capLen);
      capBuf.writeInt32LE(r, capLen + 4);
      capLen += 8;
    }
    if (cfg.loopback && loopFifo.length < 1 << 20) loopFifo.push(l, r);
    this.leftBits = 0;
  }

  rxFall() {
    // the codec shifts the next bit out at the falling edge: a new slot's MSB once the WS it latched
    // at the last rising edge names another slot (machine_i2s.c's read program changes WS together
    // with that rising edge, as it samples the slot's last bit)
    const ch = this.wsLatched;
    if (ch !== this.chan) {
      this.chan = ch;
      this.rxBit = 0;
      if (ch === 0) this.nextFrame();
      this.rxWord = ch === 0 ? this.rxLeft : this.rxRight;
    }
    const bit = this.rxBit < 32 ? (this.rxWord >>> (31 - this.rxBit)) & 1 : 0;
    this.rxBit++;
    mcu.gpio[this.sd].setInputValue(!!bit);
  }

  nextFrame() {
    this.frame++;
    if (!this.started) this.start(32); // machine_i2s.c's RX program clocks 32-bit slots always
    this.frames++;
    if (cfg.loopback) {
      this.rxLeft = loopFifo.length ? loopFifo.shift() : 0;
      this.rxRight = loopFifo.length ? loopFifo.shift() : 0;
    } else if (rxSlots && 2 * this.frame + 1 < rxSlots.length) {
      this.rxLeft = rxSlots[2 * this.frame];
      this.rxRight = rxSlots[2 * this.frame + 1];
    } else if (cfg.rx_ramp) {
      // slot n carries (n mod 2**24) << 8, as the virtual board's `ramp` in 32-bit slots
      const n = 2 * this.frame;
      this.rxLeft = ((n & 0xffffff) << 8) | 0;
      this.rxRight = (((n + 1) & 0xffffff) << 8) | 0;
    } else if (cfg.rx_sine) {
      // sine:F[:DBFS] in 32-bit slots, both channels, at the rate the bus runs
      const x = cfg.rx_sine.amplitude * Math.sin((2 * Math.PI * cfg.rx_sine.freq * this.frame) / this.rate);
      this.rxLeft = this.rxRight = Math.round(x * 2147483647) | 0;
    } else {
      this.rxLeft = 0;
      this.rxRight = 0;
    }
  }

  end() {
    event({ ev: this.tx ? 'tx_end' : 'rx_end', bus: this.id, frames: this.frames });
  }
}

// -- PIO in lock-step with the clock ------------------------------------------------------------
const machines = [];
for (const pio of mcu.pio) {
  pio.run = () => {}; // stepped here instead
  pio.machines.forEach((sm, i) => {
    machines.push({ pio, sm, index: i, next: 0, stall: 0, on: false, bus: null });
  });
}
let pioNext = Infinity;
let active = []; // the enabled machines

function refreshMachines() {
  pioNext = Infinity;
  active = [];
  for (const m of machines) {
    if (m.sm.enabled && !m.on) {
      m.on = true;
      m.next = clock.nanos;
      m.stall = 0;
      m.period = ((m.sm.clockDivInt || 65536) + m.sm.clockDivFrac / 256) * CYCLE_NS;
      // machine_i2s.c's programs drive SCK/WS by side-set; others are stepped but not decoded
      m.bus = ((m.sm.pinCtrl >>> 29) & 7) === 2 ? new Bus(m.pio, m.index, m.sm) : null;
    } else if (!m.sm.enabled && m.on) {
      m.on = false;
      if (m.bus) m.bus.end();
      m.bus = null;
    }
    if (m.on) {
      active.push(m);
      if (m.next < pioNext) pioNext = m.next;
    }
  }
}

// PIO CTRL writes (enable/disable) are seen at once: wrap the register write
for (const pio of mcu.pio) {
  const write = pio.writeUint32.bind(pio);
  pio.writeUint32 = (offset, value) => {
    write(offset, value);
    if (offset === 0) refreshMachines();
  };
}

function runPio(until) {
  // step every enabled machine whose time has come, in time order, up to `until` (ns)
  while (pioNext <= until) {
    let best = null;
    for (const m of active) {
      if (best === null || m.next < best.next) best = m;
    }
    if (best === null) {
      pioNext = Infinity;
      return;
    }
    if (best.next > until) {
      pioNext = best.next;
      return;
    }
    if (best.stall > 0) {
      best.stall--;
    } else {
      const before = best.sm.cycles;
      best.sm.step();
      const extra = best.sm.cycles - before - 1;
      if (extra > 0) best.stall = extra;
      best.pio.checkChangedPins();
      if (best.bus) best.bus.check(best.pio.pinValues);
    }
    best.next += best.period;
    pioNext = Infinity;
    for (const m of active) if (m.next < pioNext) pioNext = m.next;
  }
}

function advanceTo(target) {
  // the clock to `target` ns, alarms and PIO steps in time order; stops early if the core wakes
  // (tick(0) too: an alarm due now, e.g. a DMA transfer scheduled with no delay, fires)
  while (pioNext <= target) {
    const t = pioNext;
    clock.tick(Math.max(0, t - clock.nanos));
    runPio(t);
    if (!core.waiting) return;
  }
  clock.tick(Math.max(0, target - clock.nanos));
}

// -- the run loop: the wall clock bounds a sleeping core --------------------------------------
const wallStart = process.hrtime.bigint();
const wallNs = () => Number(process.hrtime.bigint() - wallStart);
let timer = null;
let stopping = false;
let sleptNs = 0;

function wake() {
  if (timer !== null) {
    clearTimeout(timer);
    timer = null;
    setImmediate(run);
  }
}

function run() {
  timer = null;
  if (stopping) return;
  const sliceEnd = wallNs() + 10e6; // 10 ms, then let I/O in
  for (;;) {
    if (stalls.length) checkStalls();
    for (let i = 0; i < 2000; i++) {
      if (core.waiting) {
        let target = clock.nextAlarm ? clock.nextAlarm.nanos : Infinity;
        if (pioNext < target) target = pioNext;
        const w = wallNs() + LEAD_NS;
        if (target > w) {
          // asleep until later than now: keep level with the wall clock, then wait for it (or for host bytes)
          if (w > clock.nanos) {
            sleptNs += w - clock.nanos;
            advanceTo(w);
          }
          if (core.waiting) {
            const ms = target === Infinity ? 5 : Math.min(5, Math.max(0, (target - w) / 1e6));
            timer = setTimeout(run, ms);
            return;
          }
          continue;
        }
        advanceTo(target);
      } else {
        const cycles = core.executeInstruction();
        clock.tick(cycles * CYCLE_NS);
        if (pioNext <= clock.nanos) runPio(clock.nanos);
      }
    }
    if (wallNs() > sliceEnd) {
      setImmediate(run);
      return;
    }
  }
}

function shutdown(why) {
  if (stopping) return;
  stopping = true;
  for (const m of machines) if (m.on && m.bus) m.bus.end();
  capFlush();
  if (captureFd !== null) fs.closeSync(captureFd);
  captureFd = null;
  event({ ev: 'stop', why, emulated_s: clock.nanos / 1e9, wall_s: wallNs() / 1e9, in_bytes: inBytes,
          out_bytes: outBytes, usb_connected: connected });
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
setInterval(capFlush, 200).unref();
setInterval(() => event({ ev: 'clock', emulated_s: clock.nanos / 1e9, wall_s: wallNs() / 1e9,
                          slept_s: sleptNs / 1e9 }), 1000).unref();

event({ ev: 'boot', firmware: cfg.firmware });
run();
