"""Text for a terminal: values from the database, a file or Align's answers are printed
with their control characters escaped, so that an ANSI escape in a case number cannot
clear the screen, retitle the window or hide a line."""

import re

_UNSAFE_ON_TERMINAL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text) -> str:
    """`text` with control characters (ANSI escapes, bells, carriage returns, bidi
    overrides) written as escapes like \\x1b, so that a value from the database or a
    file cannot redraw or hide what the terminal shows."""

    def escape(match):
        char = match.group()
        code = ord(char)
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

    return _UNSAFE_ON_TERMINAL.sub(escape, str(text))
