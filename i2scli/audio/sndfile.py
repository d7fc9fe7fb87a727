"""libsndfile's errors, said in one line."""

from __future__ import annotations

import soundfile as sf

SF_ERRORS = (sf.LibsndfileError, RuntimeError, OSError)


def sf_message(e: BaseException) -> str:
    text = getattr(e, "error_string", None) or (e.strerror if isinstance(e, OSError) and e.strerror else str(e))
    return " ".join(str(text).split()).rstrip(".")
