"""Untrusted text made safe for a terminal or a log: the one sanitiser (issue 25).

Run names, folder names, event messages and file names read from a run directory are
untrusted. Printed raw, an ESC sequence can rewrite the terminal, BEL rings it, a bidi override
(U+202E) reverses what follows, and a newline forges a line that looks like a finding or a log
record ("ERROR ... forged_finding"). Every CLI text output of such strings goes through
`clean`, and logging through `SafeFormatter`; JSON output is safe already (`json.dumps`
escapes every control and non-ASCII character), and HTML is escaped by Jinja2.

What is replaced by a visible escape (never dropped, so the reader sees that it was there):
C0 controls but TAB, DEL, C1 controls (U+0080-U+009F), the bidi embeddings, overrides and
isolates (U+202A-U+202E, U+2066-U+2069) and marks (U+200E, U+200F, U+061C), and lone
surrogates, which is how Python carries the bytes of a non-UTF-8 file name
(`os.fsdecode`, surrogateescape): such a byte shows as `\\xff`. Newlines are escaped too, or,
where a message may span lines, kept with every continuation line indented so that it can
never pass for a line of its own.

Two layers, both installed by the CLI entry point: `SafeStream` wraps stdout and stderr, so
whatever a command prints, no control character reaches the terminal; and the commands
`clean` each untrusted field (a run name, a folder) where they compose a line, so that a
newline inside a name cannot forge a line either.
"""

from __future__ import annotations

import logging
import re
import sys

__all__ = ["clean", "control", "SafeFormatter", "SafeStream", "install_safe_logging",
           "install_safe_streams"]

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# everything `clean` rewrites, in one class (newline and CR included; TAB kept)
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f" + _BIDI + "\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\x1b": "\\x1b", "\x07": "\\x07"}
CONTINUATION = "\n    "  # how a kept newline continues: indented, never a line of its own


def _escape(match: re.Match) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a non-UTF-8 name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: object, *, keep_newlines: bool = False) -> str:
    """`text` (any object: str() of it) with every control, bidi and surrogate character
    replaced by a visible escape. `keep_newlines`: a newline stays a line break but the next
    line is indented (multi-line messages); otherwise it shows as `\\n` (names, table cells)."""
    text = text if isinstance(text, str) else str(text)
    if not keep_newlines:
        return _UNSAFE.sub(_escape, text)
    lines = text.replace("\r\n", "\n").split("\n")
    return CONTINUATION.join(_UNSAFE.sub(_escape, line) for line in lines)


_UNSAFE_IN_STREAM = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f" + _BIDI + "\ud800-\udfff]")


class SafeStream:
    """A text stream (sys.stdout / sys.stderr) that writes everything `clean`ed but line
    breaks and tabs. `control(seq)` writes a terminal control sequence of our own (status
    --watch clears the screen). Everything else is delegated to the wrapped stream."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_UNSAFE_IN_STREAM.sub(_escape, text))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def control(self, sequence: str) -> None:
        """A control sequence the toolkit itself means (never built from run data)."""
        self._stream.write(sequence)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def install_safe_streams() -> None:
    """Wrap sys.stdout and sys.stderr in SafeStream (once; before logging is set up, whose
    handler keeps the stream it was given)."""
    if not isinstance(sys.stdout, SafeStream):
        sys.stdout = SafeStream(sys.stdout)
    if not isinstance(sys.stderr, SafeStream):
        sys.stderr = SafeStream(sys.stderr)


def control(sequence: str) -> None:
    """Write a terminal control sequence of the toolkit's own to stdout, past SafeStream."""
    out = sys.stdout
    (out.control if isinstance(out, SafeStream) else out.write)(sequence)


class SafeFormatter(logging.Formatter):
    """A logging.Formatter whose message part is `clean`ed (newlines kept, indented): an
    untrusted string in a log record can neither drive the terminal nor forge a record.
    The traceback of `exc_info`, formatted by logging itself, is left as it is."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        saved = record.message
        record.message = clean(saved, keep_newlines=True)
        try:
            return super().formatMessage(record)
        finally:
            record.message = saved


def install_safe_logging(level: int, fmt: str, datefmt: str | None = None) -> None:
    """logging.basicConfig to stderr with SafeFormatter on every root handler (called once
    by each entry point: the CLI, the job callable)."""
    logging.basicConfig(level=level, format=fmt, datefmt=datefmt)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(SafeFormatter(fmt, datefmt))
