"""The exit status of every command (`verify.py`, `python -m port`), and the one line an error gets.

    0  every judged stage passes (python -m port: the diarization was written)
    1  a stage drifted (a verdict: the candidate is judged and fails)
    2  bad input: one line naming the file (or the option) and what is wrong
    3  an error the program did not foresee: one line asking for a report; --debug shows the traceback
    4  nothing judged: every stage excluded, not implemented or declared so (never a pass)
    130 / 143  interrupted (Ctrl-C) / terminated (SIGTERM), nothing half-written kept

docs/cli.md ("Exit status") is the user's page of this contract.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .dumps import printable

EXIT_OK, EXIT_DRIFT, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_NOTHING_JUDGED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
LINE_LIMIT = 2000  # characters of one error line

# bad input: the classes each module raises for what it was given (looked up only in modules
# already imported: an error can only come from a module that was loaded, and importing the
# reference's would import torch)
BAD_INPUT = (("port.dumps", "DumpError"), ("port.dumps", "OutputError"), ("port.audio", "AudioError"),
             ("port.runtime", "ModelError"), ("port.inputs", "GivenError"), ("port.plda", "PLDAError"),
             ("reference.export", "ExportError"), ("reference.models", "ModelError"),
             ("reference.fbank_graph", "FbankGraphError"))
_OURS = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), part) + os.sep
              for part in ("port", "harness", "reference"))


class UsageError(ValueError):
    """A command line that cannot be run (an option's value, two outputs on one path); one line."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line too (UsageError: exit 2, no usage block)."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def bad_input_classes(extra: tuple[type[BaseException], ...] = ()) -> tuple[type[BaseException], ...]:
    found = [UsageError, *extra]
    for module, name in BAD_INPUT:
        if module in sys.modules and hasattr(sys.modules[module], name):
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def _raised_by_us(error: BaseException, scripts: tuple[str, ...]) -> bool:
    """Whether the innermost frame of `error` is this project's own code (a ValueError raised
    there on purpose says what is wrong with an argument; one from numpy is a surprise)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return False
    filename = os.path.abspath(frames[-1].filename)
    return filename.startswith(_OURS) or filename in scripts  # _OURS: where this package is, installed or not


def exit_status(error: BaseException, scripts: tuple[str, ...] = (), extra: tuple = ()) -> int:
    """EXIT_BAD_INPUT for bad input (our error classes, an OSError on a named file, a ValueError
    our own code raised), EXIT_INTERNAL for anything else."""
    if isinstance(error, bad_input_classes(extra)):
        return EXIT_BAD_INPUT
    if isinstance(error, OSError):
        return EXIT_BAD_INPUT
    if type(error) is ValueError and _raised_by_us(error, scripts):
        return EXIT_BAD_INPUT
    return EXIT_INTERNAL


def message(error: BaseException) -> str:
    """The error's one line, every control character escaped."""
    if isinstance(error, OSError) and error.strerror:
        text = f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    else:
        text = str(error) or type(error).__name__
    return printable(text, LINE_LIMIT)


def report(error: BaseException, prog: str, debug: bool = False, scripts: tuple[str, ...] = (),
           extra: tuple = ()) -> int:
    """Print the one line `error` gets on stderr (with its traceback first under --debug);
    return the exit status."""
    status = exit_status(error, scripts, extra)
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    if status == EXIT_BAD_INPUT:
        print(f"error: {message(error)}", file=sys.stderr)
    else:
        print(f"internal error: {type(error).__name__}: {printable(error, 300)} (a bug in {prog}, not in its input; "
              f"please report it with the traceback --debug prints; exit {EXIT_INTERNAL})", file=sys.stderr)
    return status
