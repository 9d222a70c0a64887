"""Regular expressions in linear time: RE2, the engine Prometheus and Alertmanager use for `=~`.

A pattern written in a runbook or carried by an alert can never hang a workflow task or the receiver
(Python's backtracking engine takes exponential time on `(a+)+$`). RE2 has no backreferences or lookaround;
such a pattern is an error with a sentence, not a hang.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr; ours say why themselves


class RegexError(ValueError):
    pass


@functools.lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Any:
    """The compiled pattern (`search`, `fullmatch`), or RegexError naming what RE2 refused."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RegexError(f"bad regular expression {pattern!r}: {reason} (RE2 syntax: no backreferences or "
                         "lookaround)") from None
