"""`i2s play`, `i2s record` and `i2s duplex`: the streams."""

from __future__ import annotations

import contextlib
import threading

import click

from i2scli.cli import main
from i2scli.cli.common import (
    _bus,
    _bus_options,
    _finish,
    _fit_option,
)
from i2scli.units import DURATION, GAIN, LEVEL, RATE, Finite

#: what -t may name besides raw (read from the header whatever is named, as libsndfile knows it)
READ_TYPES = ["wav", "w64", "rf64", "aiff", "au", "flac", "ogg", "caf", "mp3"]
#: sox's -e names (and the short forms sox users write)
RAW_ENCODINGS = ["signed-integer", "unsigned-integer", "floating-point", "signed", "unsigned", "float"]


# -- play ---------------------------------------------------------------------------------------
OPENING_GRACE_S = 5.0  # how long a board that failed waits to hear whether the input failed too


class Opening:
    """`fn()` (opening a stream) in a thread while the board is made ready; `result()` waits
    for it (a signal still ends the wait) and raises what it raised."""

    def __init__(self, fn):
        self.value = self.error = None
        self.done = threading.Event()

        def run():
            try:
                self.value = fn()
            except BaseException as e:  # noqa: BLE001 - handed to the command's thread
                self.error = e
            finally:
                self.done.set()

        threading.Thread(target=run, name="i2s-open", daemon=True).start()

    def failure(self, timeout: float) -> BaseException | None:
        """What opening raised, if it ended within `timeout` s by raising an Exception."""
        self.done.wait(timeout)
        return self.error if self.done.is_set() and isinstance(self.error, Exception) else None

    def result(self):
        while not self.done.wait(0.1):
            pass
        if self.error is not None:
            raise self.error
        return self.value


def _live_tuning(f):
    """The live match's loop settings, the same for play and record."""
    f = click.option("--live-loop", type=DURATION, default="10s", show_default=True, metavar="DUR",
                     help="Live: the match's time constant (slower: smoother; faster: settles sooner).")(f)
    return click.option("--live-max-ppm", type=click.FloatRange(1, 50000), default=2000, show_default=True,
                        metavar="PPM", help="Live: the largest correction, in ppm of the rate.")(f)


@main.command()
@click.argument("file", required=False, metavar="FILE")
@click.option("--tone", type=Finite(min=1), metavar="FREQ", help="Play a sine of FREQ Hz instead of a file.")
@click.option("--level", type=LEVEL, default=-6.0, show_default=True, metavar="DBFS",
              help="Peak level of --tone (0 is full scale).")
@click.option("-r", "--rate", type=RATE, metavar="HZ",
              help="Bus rate (default: the file's; resampled).")
@click.option("-b", "--bits", type=click.Choice(["8", "16", "24", "32", "64"]),
              help="Bus sample size, 16 or 32 (default: 16 for <=16-bit files); with -t raw, the input's.")
@click.option("-c", "--channels", type=click.Choice(["1", "2"]),
              help="Bus channels (default: the file's, at most 2); with -t raw, the input's.")
@click.option("-t", "--type", "file_type", type=click.Choice(["raw", *READ_TYPES], case_sensitive=False),
              help="raw: headerless PCM, described by -r -c -b [-e] [--endian] or -f (as sox and aplay); "
                   "other types are read from their header.")
@click.option("-e", "--encoding", type=click.Choice(list(RAW_ENCODINGS), case_sensitive=False),
              help="Raw PCM sample encoding (default signed-integer).")
@click.option("--endian", type=click.Choice(["little", "big"], case_sensitive=False),
              help="Raw PCM byte order (default little).")
@click.option("-f", "--format", "aplay_format", metavar="FMT",
              help="Raw PCM as aplay names it: S16_LE, S24_3LE, S32_LE, FLOAT_LE, U8, ... or cd/dat (implies -t raw).")
@click.option("--channels-map", metavar="LIST", help="File channels to play, e.g. 0,1 or 2 (0-based).")
@click.option("-d", "--duration", type=DURATION, metavar="DUR", help="Play only this long.")
@click.option("-s", "--samples", type=click.IntRange(min=1), metavar="N", help="Play only N frames.")
@click.option("--gain", type=GAIN, default=0.0, metavar="DB", help="Gain on the host (clipping is counted).")
@click.option("--shift", type=click.IntRange(-31, 31), default=0, metavar="N",
              help="Shift samples on the board with I2S.shift (6 dB a bit).")
@click.option("--live/--no-live", default=None,
              help="Match a live source's clock to the board's (adaptive resampling that holds the reserve "
                   "ahead of the board). Default: on for a pipe, a FIFO or standard input, as soon as they drift "
                   "apart; --live matches from the start, --no-live only measures.")
@click.option("--live-reserve", type=DURATION, default="100ms", show_default=True, metavar="DUR",
              help="Live: the source audio held ahead of the board's ring (the latency the match holds).")
@_live_tuning
@click.option("--latency", type=DURATION, default=None, metavar="DUR",
              help="The latency to hold, e.g. 150ms: the I2S ring is what a live source's reserve leaves of it; "
                   "refused, with the least and most this board and link can do, when it cannot be held.")
@_fit_option
@_bus_options
def play(file, tone, level, rate, bits, channels, file_type, encoding, endian, aplay_format, channels_map, duration,
         samples, gain, shift, live, live_reserve, live_max_ppm, live_loop, latency, fit, port, as_json, quiet, strict,
         **bus_kw):
    """Play an audio file (any format libsndfile reads, or raw PCM with -t raw; - for stdin) on the
    board's I2S TX. A pipe or FIFO plays as it comes."""
    from i2scli import audio
    from i2scli.cli.run import run_command, run_play

    if (file is None) == (tone is None):
        raise click.UsageError("give a FILE to play or --tone FREQ")
    raw = None
    if aplay_format is not None and file_type not in (None, "raw"):
        raise click.UsageError(f"-f describes raw PCM: it cannot be used with -t {file_type}")
    if file_type == "raw" or aplay_format is not None:
        if tone is not None:
            raise click.UsageError("-t raw describes the input FILE: --tone has none")
        try:
            raw = audio.raw_format(rate, int(channels) if channels else None, int(bits) if bits else None,
                                   encoding, endian, aplay_format)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        rate, channels, bits = raw.rate, str(raw.channels), None  # the bus takes the input's format
    elif encoding is not None or endian is not None:
        raise click.UsageError("-e and --endian describe raw PCM: add -t raw")
    elif bits not in (None, "16", "32"):
        raise click.BadParameter(f"the bus takes 16 or 32 bits, not {bits} (8, 24 and 64 describe raw PCM input, "
                                 f"with -t raw)", param_hint="-b/--bits")
    if duration is not None and samples is not None:
        raise click.UsageError("use -d/--duration or -s/--samples, not both")
    if tone is not None and tone >= (rate or 48000) / 2:
        raise click.BadParameter(f"{tone:g} Hz is not below the Nyquist frequency of the {rate or 48000} Hz bus "
                                 f"({(rate or 48000) / 2:g} Hz)", param_hint="--tone")

    if live and (tone is not None or not audio.is_stream(file)):
        raise click.UsageError("--live matches a stream's clock (a pipe, a FIFO, standard input): "
                               "a file or a tone is paced by the board")
    if not 0 < live_reserve <= 0.8 or live_loop < 0.2:
        raise click.UsageError("--live-reserve must be within 0..800ms and --live-loop at least 200ms")
    if latency is not None and (bus_kw.get("ibuf") or bus_kw.get("buffer_time")):
        raise click.UsageError("--latency sizes the ring itself: not with --ibuf or --buffer-time")
    if latency is not None and not 0 < latency <= 10:
        raise click.UsageError("--latency must be within 0..10s")
    clock = None

    def job(reporter, stop):
        from i2scli import session

        opts = _bus(**bus_kw, shift=shift, fit=fit, rate=rate, channels=int(channels) if channels else None)
        stats = audio.ConvertStats()
        cmap = audio.parse_channels_map(channels_map) if channels_map else None

        def matcher(inp):
            from i2scli.live import LiveMatch, LiveParams, source_kind

            params = LiveParams(target_s=live_reserve, max_ppm=live_max_ppm, loop_s=live_loop)
            mode = "live" if live else "off" if live is False else "auto"
            return LiveMatch(inp.rate, inp.channels, inp.backlog, mode, source_kind(file), params)

        def prepare(inp):
            nonlocal clock
            clock = matcher(inp) if inp.streaming else None
            deep = not inp.integer or (inp.subtype not in ("PCM_16", "PCM_S8", "PCM_U8"))
            bus = audio.BusFormat(rate or inp.rate, int(bits or (32 if deep else 16)),
                                  int(channels or min(inp.channels, 2)))
            max_frames = samples if samples is not None else (
                int(round(duration * inp.rate)) if duration is not None else None)
            total = inp.bus_frames(bus, 0, max_frames)
            blocks = audio.play_blocks(inp, bus, gain_db=gain, max_frames=max_frames, stats=stats, live=clock)
            return bus, total, blocks, file if file != "-" else "stdin"

        inp = opening = None
        if tone is not None:
            bus = audio.BusFormat(rate or 48000, int(bits or 16), int(channels or 2))
            total = samples or int(round((duration if duration is not None else 5.0) * bus.rate))
            blocks = audio.tone_blocks(tone, bus, frames=total, dbfs=level, stats=stats)
            what = f"{tone:g} Hz tone"
        elif audio.is_stream(file):
            # a pipe's header may come late (a source that starts when it is ready): the board is
            # made ready meanwhile, so that the first block plays as soon as it comes
            opening = Opening(lambda: audio.open_input(file, cmap, raw=raw))
        else:
            inp = audio.open_input(file, cmap, raw=raw)
            bus, total, blocks, what = prepare(inp)
        try:
            with contextlib.ExitStack() as stack:
                try:
                    agent = stack.enter_context(session.board(port, baud=bus_kw["baud"], warn=reporter.warn,
                                                              expect={"mode": "tx", "io": opts.io}))
                except Exception:
                    # an input that cannot be used is said first, as when it is opened first
                    failed = opening.failure(OPENING_GRACE_S) if opening is not None else None
                    if failed is not None:
                        raise failed from None
                    raise
                if opening is not None:
                    inp = opening.result()
                    bus, total, blocks, what = prepare(inp)
                opts.stream_seconds = total / bus.rate if total else None  # a short file: no more ring than it has
                if latency is not None:  # a live source's reserve is held ahead of the ring: the ring is the rest
                    opts.latency = latency
                    opts.latency_reserve = live_reserve if clock is not None and clock.mode != "off" else 0.0
                return run_play(agent, reporter, stop, what, blocks, bus, opts, total, stats,
                                live=inp is not None and inp.streaming, clock=clock)
        finally:
            if inp is not None:
                inp.close()

    run_command(job, quiet=quiet, finish=lambda s, r: _finish(s, r, as_json, strict), as_json=as_json)


# -- record -------------------------------------------------------------------------------------
@main.command()
@click.argument("file", metavar="FILE")
@click.option("-r", "--rate", type=RATE, default=16000, show_default=True, metavar="HZ")
@click.option("-b", "--bits", type=click.Choice(["16", "32"]), default="32", show_default=True,
              help="Bus sample size (24-bit microphones send 32-bit slots).")
@click.option("-c", "--channels", type=click.Choice(["1", "2"]), default="1", show_default=True)
@click.option("-d", "--duration", type=DURATION, metavar="DUR", help="Record this long.")
@click.option("-s", "--samples", type=click.IntRange(min=1), metavar="N", help="Record exactly N frames.")
@click.option("--subtype", type=click.Choice(["PCM_16", "PCM_24", "PCM_32"]),
              help="File sample format (default: PCM_16 for 16-bit, PCM_32 for 32-bit; FLAC PCM_24).")
@click.option("-t", "--type", "file_type", type=click.Choice(["raw", "wav"], case_sensitive=False),
              help="raw: headerless little-endian PCM of --subtype (any FILE name, or -); default: from the "
                   "extension, WAV for -.")
@click.option("--stop-on-silence", type=DURATION, metavar="DUR", help="Stop after this much silence.")
@click.option("--threshold", type=LEVEL, default=-50.0, show_default=True, metavar="DBFS",
              help="Below this peak level counts as silence.")
@click.option("--wait-for-sound", is_flag=True, help="Start keeping audio at the first sound over --threshold.")
@click.option("--max-duration", type=DURATION, metavar="DUR",
              help="Safety net for --stop-on-silence / --wait-for-sound.")
@click.option("--slot", type=click.Choice(["left", "right"]),
              help="A mono microphone on this slot: records both slots on the bus, keeps this one (mono file).")
@click.option("--shift", "rx_shift", type=click.IntRange(-31, 31), default=0, metavar="N",
              help="Shift each sample N bits (negative: right, arithmetic), on the host as I2S.shift would; "
                   "-1 undoes an SPH0645's doubled samples.")
@click.option("--max-file-time", type=DURATION, metavar="DUR",
              help="Start a new file every DUR of audio (exact frame counts, nothing lost or repeated between "
                   "files): FILE-01.ext, FILE-02.ext, ... as arecord, or where FILE has {n}.")
@click.option("--use-strftime", is_flag=True,
              help="FILE is a strftime pattern (%Y-%m-%d_%H%M%S ...), taken as each file starts; %v or {n} is "
                   "the file number.")
@click.option("--live/--no-live", default=None,
              help="Into a pipe or FIFO read by a consumer on a clock of its own (a sound card's player): hold "
                   "the backlog between them by resampling the recording. Default, and --no-live: bit-exact, "
                   "the backlog only measured. A file is never resampled.")
@click.option("--live-reserve", type=DURATION, default="100ms", show_default=True, metavar="DUR",
              help="Live: the backlog held between the board and its reader (silence ahead of the first audio).")
@_live_tuning
@_bus_options
def record(file, rate, bits, channels, duration, samples, subtype, file_type, stop_on_silence, threshold,
           wait_for_sound, max_duration, slot, rx_shift, max_file_time, use_strftime, live, live_reserve,
           live_max_ppm, live_loop, port, as_json, quiet, strict, **bus_kw):
    """Record the board's I2S RX into FILE (.wav, .flac, .rf64, .w64; - for WAV on stdout; -t raw
    for headerless PCM).

    Stops on -d/-s, Ctrl-C, SIGTERM, SIGHUP, --stop-on-silence, a pipe's reader going away, or
    a lost board; the file always holds every sample received, and its header is refreshed
    about once a second. Into a pipe the audio goes as it comes: a reader slower than the
    stream costs overruns, counted.
    """
    from i2scli import audio
    from i2scli.cli.run import run_command, run_record

    if duration is not None and samples is not None:
        raise click.UsageError("use -d/--duration or -s/--samples, not both")
    if file == "-" and as_json:
        raise click.UsageError("--json prints on stdout, which - already uses for audio")
    if slot and channels == "2":
        raise click.UsageError("--slot keeps one slot: a mono file (leave out -c 2)")
    if file_type == "wav" and file != "-" and not file.lower().endswith(".wav"):
        raise click.UsageError(f"-t wav writes a .wav file (or -), not {file}")
    if (max_file_time is not None or use_strftime) and file == "-":
        raise click.UsageError("--max-file-time and --use-strftime name files: not - (a pipe is one stream)")
    from i2scli.live import LiveParams, output_is_stream

    if live and (max_file_time is not None or use_strftime or not output_is_stream(file)):
        raise click.UsageError("--live matches the clock of a pipe's or a FIFO's reader: a file is never resampled")
    if not 0 < live_reserve <= 1.5 or live_loop < 0.2:
        raise click.UsageError("--live-reserve must be within 0..1500ms and --live-loop at least 200ms")
    matching = ("live" if live else "off" if live is False else "auto",
                LiveParams(target_s=live_reserve, max_ppm=live_max_ppm, loop_s=live_loop))
    per_file = int(round(max_file_time * rate)) if max_file_time is not None else None
    if per_file is not None and per_file < 1:
        raise click.BadParameter(f"{max_file_time:g} s is less than one frame at {rate} Hz",
                                 param_hint="--max-file-time")
    bus = audio.BusFormat(rate, int(bits), 2 if slot else int(channels))
    file_bus = audio.BusFormat(rate, int(bits), 1) if slot else None
    keep = audio.slot_keeper(bus, slot, rx_shift) if slot or rx_shift else None

    def job(reporter, stop):
        from i2scli import session, splitfiles

        raw = file_type == "raw"
        split = None
        audio.check_output_path(splitfiles.file_name(file, 1, use_strftime) if use_strftime else file, raw)
        if per_file is not None or use_strftime:
            # without --max-file-time, --use-strftime names the one file
            def split(fbus):
                return splitfiles.SplitOutput(file, fbus, per_file or (1 << 62), subtype=subtype, raw=raw,
                                              strftime=use_strftime)
        opts = _bus(**bus_kw)
        frames = samples if samples is not None else (int(round(duration * rate)) if duration is not None else None)
        opts.stream_seconds = frames / rate if frames and not wait_for_sound else None
        until = session.RecordStop(frames=frames, stop_on_silence=stop_on_silence, threshold_dbfs=threshold,
                                   wait_for_sound=wait_for_sound,
                                   max_frames=int(round(max_duration * rate)) if max_duration else None)
        with session.board(port, baud=bus_kw["baud"], warn=reporter.warn,
                           expect={"mode": "rx", "io": opts.io}) as agent:
            return run_record(agent, reporter, stop, file, bus, opts, until, subtype, file_bus, keep, raw, split,
                              matching=None if split is not None else matching)

    run_command(job, quiet=quiet, finish=lambda s, r: _finish(s, r, as_json, strict), as_json=as_json)


# -- duplex -------------------------------------------------------------------------------------
@main.command()
@click.argument("play_file", required=False, metavar="[PLAY_FILE]")
@click.option("-o", "--output", "rec_file", required=True, metavar="REC_FILE",
              help="Recording file; with --cycles, {n} in the name is the cycle number (take-{n}.wav).")
@click.option("--order", type=click.Choice(["record-play", "play-record"]), default="record-play", show_default=True)
@click.option("-r", "--rate", type=RATE, metavar="HZ",
              help="Bus rate (default: the file's, else 16000).")
@click.option("-b", "--bits", type=click.Choice(["16", "32"]), default="32", show_default=True,
              help="32 keeps the bit clock at one speed across the switch.")
@click.option("-c", "--channels", type=click.Choice(["1", "2"]), help="Bus channels (default: the file's, else 1).")
@click.option("-d", "--duration", type=DURATION, metavar="DUR", help="Recording length.")
@click.option("--stop-on-silence", type=DURATION, metavar="DUR", help="End the recording after this much silence.")
@click.option("--threshold", type=LEVEL, default=-50.0, show_default=True, metavar="DBFS")
@click.option("--max-duration", type=DURATION, metavar="DUR", help="Safety net for --stop-on-silence.")
@click.option("--cycles", type=click.IntRange(min=1), default=1, show_default=True, help="Repeat record/play N times.")
@click.option("--switch-delay", type=DURATION, default="1ms", show_default=True, metavar="DUR",
              help="Wait between releasing SD and driving it from the other side.")
@click.option("--dir-pin", metavar="PIN", help="Direction pin telling the codec who drives SD (default: preset's).")
@click.option("--dir-rx-level", type=click.IntRange(0, 1), default=0, show_default=True,
              help="DIR level while the codec drives SD (recording).")
@click.option("--sd-tx", metavar="PIN", help="TX data pad when two pads are tied to one SD line.")
@click.option("--sd-rx", metavar="PIN", help="RX data pad when two pads are tied to one SD line.")
@click.option("--lead-in", type=DURATION, default="5ms", show_default=True, metavar="DUR",
              help="Silence before the TX audio.")
@click.option("--rx-discard", type=DURATION, default="2ms", show_default=True, metavar="DUR",
              help="Frames thrown away after RX starts.")
@click.option("--max-clock-gap", type=DURATION, default="10ms", show_default=True, metavar="DUR",
              help="Warn (fail under --strict) when the bit clock stops longer at a switch.")
@click.option("--timeline", "timeline_vcd", metavar="FILE.vcd", type=click.Path(dir_okay=False),
              help="Write the switch timeline as a VCD trace.")
@_fit_option
@_bus_options
def duplex(play_file, rec_file, order, rate, bits, channels, duration, stop_on_silence, threshold, max_duration,
           cycles, switch_delay, dir_pin, dir_rx_level, sd_tx, sd_rx, lead_in, rx_discard, max_clock_gap,
           timeline_vcd, fit, port, as_json, quiet, strict, **bus_kw):
    """Half-duplex on one shared SD line: record, switch, play (or play, then record).

    Without PLAY_FILE the recording is played back (echo test). The switch runs on the
    board: release SD, wait --switch-delay, drive it from the other side.
    """
    from i2scli import audio
    from i2scli.cli.run import run_command, run_duplex
    from i2scli.targets.boards import parse_pin

    if duration is None and stop_on_silence is None:
        raise click.UsageError("give the recording length with -d DURATION (or --stop-on-silence DUR)")
    if play_file is None and order == "play-record":
        raise click.UsageError("echo mode (no PLAY_FILE) needs --order record-play")
    if play_file is None and fit:
        raise click.UsageError("--fit fits PLAY_FILE to the link: echo mode (no PLAY_FILE) has none")
    if cycles > 1 and "{n}" not in rec_file:
        raise click.UsageError("with --cycles, put {n} in the -o name (e.g. -o take-{n}.wav)")

    def job(reporter, stop):
        from i2scli import session
        from i2scli.cli.run import timeline_path

        for n in range(1, cycles + 1):  # every file it will write, before the board is touched
            audio.check_output_path(rec_file.replace("{n}", str(n)))
            if timeline_vcd:
                audio.check_writable(timeline_path(timeline_vcd, n, cycles))
        opts = _bus(**bus_kw, fit=fit, rate=rate, channels=int(channels) if channels else None)
        inp = audio.open_input(play_file) if play_file else None
        try:
            bus = audio.BusFormat(rate or (inp.rate if inp else 16000), int(bits),
                                  int(channels or (min(inp.channels, 2) if inp else 1)))
        finally:
            if inp is not None:
                inp.close()
        if bus.bits == 16:
            reporter.warn("with -b 16 the bit clock changes speed at the switch (RX clocks 64 bits a frame, "
                          "TX 32): use -b 32")
        dx = session.DuplexOptions(order=order, switch_delay=switch_delay, dir_pin=parse_pin(dir_pin),
                                   dir_rx_level=dir_rx_level, sd_tx=parse_pin(sd_tx), sd_rx=parse_pin(sd_rx),
                                   lead_in=lead_in, rx_discard=rx_discard, max_clock_gap=max_clock_gap)
        until = session.RecordStop(frames=int(round(duration * bus.rate)) if duration else None,
                                   stop_on_silence=stop_on_silence, threshold_dbfs=threshold,
                                   max_frames=int(round(max_duration * bus.rate)) if max_duration else None)
        with session.board(port, baud=bus_kw["baud"], warn=reporter.warn, expect={"mode": "duplex"}) as agent:
            return run_duplex(agent, reporter, stop, play_file, rec_file, bus, opts, dx, until, cycles,
                              timeline_vcd)

    def finish(summary, reporter):
        if summary.get("gap_exceeded"):
            reporter.warn(f"the bit clock stopped for {max(summary['clock_gaps_us']) / 1000:.2f} ms at a switch, "
                          f"more than --max-clock-gap {max_clock_gap * 1000:g} ms")
            if strict:
                _finish(summary, reporter, as_json, False)
                from i2scli.errors import Exit

                raise SystemExit(Exit.STRICT)
        _finish(summary, reporter, as_json, strict)

    run_command(job, quiet=quiet, finish=finish, as_json=as_json)
