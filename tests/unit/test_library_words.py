"""Library messages in the library's words: what to change named as data, in plain words, no
command-line flag; the command line says the same with its flags (cli/doctor.py, cli/advice.py)."""

import numpy as np
import pytest
from test_doctor import RATE, mics

from i2scli.cli.advice import words
from i2scli.cli.doctor import in_words
from i2scli.errors import worded
from i2scli.loopback import doctor


def test_findings_name_settings_as_data_and_the_cli_words_them_as_flags():
    changes = set()
    for left, right in mics().values():
        rep = doctor.diagnose(np.stack([left, right], 1)[:RATE], RATE)
        for f in rep["findings"]:
            assert "--" not in f.say(), f.say()
            if f.change:
                changes.add(f.change[0])
        words = in_words(rep)
        assert all(doctor.CHANGE not in a for a in words["advice"])
        if rep["record"] is not None:
            assert words["record"].startswith(f"i2s record -r {RATE} -b {rep['record'].bits}")
    assert changes == {"slot", "shift", "subtype", "sd"}


def test_a_message_naming_settings_is_plain_in_the_library_and_flags_on_the_command_line():
    e = worded(ValueError, "no preset fits: give ", ("board", None), " or also ",
               ("pin", ("rx", "sd")), "; or ", ("rate", 16000), " and ", ("no_probe", None))
    assert str(e) == "no preset fits: give a board preset or also RX sd; or 16000 Hz and no link probe"
    assert words(e) == "no preset fits: give --board NAME or also --rx-sd; or -r 16000 and --no-probe"


def test_the_baud_setting_is_plain_in_the_link_and_a_flag_on_the_command_line():
    from i2scli.cli.ui import _one_line
    from i2scli.link import baud

    with pytest.raises(ValueError) as e:
        baud.parse_setting("fast")
    assert str(e.value) == "the baud setting must be auto, off or a positive integer rate, not 'fast'"
    assert words(e.value) == "--baud must be auto, off or a positive integer rate, not 'fast'"
    said = []
    baud._say(said.append, baud.Worded("no answer (", ("baud_n", None), " picks a rate)"))
    assert str(said[0]) == "no answer (a baud setting picks a rate)"
    assert _one_line(said[0]) == "no answer (--baud N picks a rate)"


def test_a_rig_of_many_boards_asks_for_a_board_name_in_plain_words(tmp_path):
    from i2scli import rig

    path = tmp_path / "rig.toml"
    path.write_text('[boards.a]\nport = "x"\n[boards.b]\nport = "y"\n')
    with pytest.raises(ValueError) as e:
        rig.pick(path, None)
    assert str(e.value) == f"{path} has 2 boards (a, b): choose one with a board name"
    assert words(e.value) == f"{path} has 2 boards (a, b): choose one with --board-name"
