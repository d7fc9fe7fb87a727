"""The doctor's findings as the library gives them: plain words that name what to change as data,
no command-line flag; the command line words the same findings with its flags (cli/doctor.py)."""

import numpy as np
from test_doctor import RATE, mics

from i2scli.cli.doctor import in_words
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
