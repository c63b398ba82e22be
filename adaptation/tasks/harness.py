"""The harness: the code that runs inside the sandbox around a generated program (never in t2reg's process).

:mod:`sandbox` copies this file into the sandbox and runs it as
``python -I -S harness.py REPORT_FD SECRET_FD FOLDER MODE [weak]``. Standard
library only: t2reg is not there. Its first act is to write :data:`STARTED` on
the report pipe, so the parent can tell a run the machine never started from a
program that failed. Then, by ``MODE``:

``program``
    Reads a nonce from the secret pipe (and closes it), runs ``FOLDER/program.py``
    and writes the nonce back after its last statement ran.

``probes``
    Runs ``FOLDER/program.py``, then the steps of ``FOLDER/plan.marshal`` (a
    list of pairs, written by t2reg) in a copy of the program's namespace:
    ``("run", STATEMENTS)`` executes test code, ``("value", EXPRESSION)``
    evaluates an expression and writes one line on the
    report pipe, ``{"v": VALUE}`` (the value in the format below) or ``{"e":
    REASON}`` when it raised or cannot be written. A ``run`` step that raises
    ends the run. Nothing here decides whether a value is right: the parent
    decodes the lines strictly and compares them with the expected values.

The value format is JSON plus tags: ``null``, booleans, strings, finite floats,
integers below 2**63 in size and lists are JSON's own; every other value is an
object with one key: ``{"tuple": [...]}``, ``{"set": [...]}``, ``{"frozenset":
[...]}``, ``{"dict": [[key, value], ...]}``, ``{"bytes": "HEX"}``, ``{"float":
"nan" | "inf" | "-inf"}``, ``{"int": "HEX"}`` (larger integers) and ``{"complex":
[real, imag]}``. Subclasses are written as their base type (a namedtuple as a
tuple, a Counter as a dict); anything else cannot be written. (JSON is written
here with the C string escaper of ``json``, not ``json`` itself, whose import
costs more than a small program's whole run.)
"""

from __future__ import annotations

import marshal
import math
import os
import sys

try:
    from _json import encode_basestring_ascii as _quote  # CPython's: what json.dumps uses, without importing re
except ImportError:  # pragma: no cover - other Pythons
    from json.encoder import encode_basestring_ascii as _quote

STARTED = b"t2reg-harness-started\n"
MAX_DEPTH = 32  # nesting of a written value; the parent refuses deeper ones too
_TAGGED_INT = 1 << 63


def encode(value: object, depth: int = 0) -> object:
    """``value`` as JSON-ready data in the format above; TypeError or ValueError when it has no such form."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH}")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        number = int(value)
        return number if -_TAGGED_INT < number < _TAGGED_INT else {"int": format(number, "x")}
    if isinstance(value, float):
        number = float(value)
        return number if math.isfinite(number) else {"float": repr(number)}
    if isinstance(value, complex):
        return {"complex": [encode(value.real, depth + 1), encode(value.imag, depth + 1)]}
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, list):
        return [encode(item, depth + 1) for item in list.__iter__(value)]
    if isinstance(value, tuple):
        return {"tuple": [encode(item, depth + 1) for item in tuple.__iter__(value)]}
    if isinstance(value, frozenset):
        return {"frozenset": [encode(item, depth + 1) for item in frozenset.__iter__(value)]}
    if isinstance(value, set):
        return {"set": [encode(item, depth + 1) for item in set.__iter__(value)]}
    if isinstance(value, dict):
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]}
    raise TypeError(f"a {type(value).__name__} cannot be reported")


def dump(data: object) -> str:
    """JSON text of :func:`encode`'s output (what ``json.dumps`` writes for it, ASCII only)."""
    if data is None:
        return "null"
    if data is True or data is False:
        return "true" if data else "false"
    if type(data) is int:
        return int.__repr__(data)
    if type(data) is float:
        return float.__repr__(data)  # finite: encode() tags the others
    if type(data) is str:
        return _quote(data)
    if type(data) is list:
        return "[" + ",".join([dump(item) for item in data]) + "]"
    if type(data) is dict:
        return "{" + ",".join([_quote(key) + ":" + dump(item) for key, item in data.items()]) + "}"
    raise TypeError(f"not encoded data: {type(data).__name__}")


def _write_all(write, fd: int, data: bytes) -> None:
    while data:
        data = data[write(fd, data):]


def _record(value: object) -> bytes:
    try:
        line = dump({"v": encode(value)})
    except (TypeError, ValueError, RecursionError) as exc:
        line = dump({"e": f"unreportable: {str(exc)[:200]}"})
    return (line + "\n").encode()


def _compile_program(folder: str):
    with open(os.path.join(folder, "program.py"), "rb") as fh:
        return compile(fh.read(), "program.py", "exec")


def _run_program(report_fd: int, secret_fd: int, folder: str, guard) -> None:
    nonce = os.read(secret_fd, 256)
    os.close(secret_fd)
    report = os.write  # bound now: the program may rebind os.write
    code = _compile_program(folder)
    sys.argv = ["program.py"]
    guard()
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    report(report_fd, nonce)


def _run_probes(report_fd: int, secret_fd: int, folder: str, guard) -> None:
    os.close(secret_fd)
    write = os.write  # bound now: the program may rebind it
    with open(os.path.join(folder, "plan.marshal"), "rb") as fh:
        steps = [(kind, compile(source, "<test>", "exec" if kind == "run" else "eval"))
                 for kind, source in marshal.load(fh)]
    code = _compile_program(folder)
    sys.argv = ["program.py"]
    guard()
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(code, namespace)
    scope = dict(namespace)  # test names never overwrite the program's globals
    for kind, step in steps:
        if kind == "run":
            exec(step, scope)
            continue
        try:
            value = eval(step, scope)
        except BaseException as exc:  # noqa: BLE001 - whatever the program raises is its answer
            line = (dump({"e": f"raised {type(exc).__name__}"}) + "\n").encode()
        else:
            line = _record(value)
        _write_all(write, report_fd, line)


def _weak_guard() -> None:
    """Weak isolation only: an audit hook refusing writes outside the working folder and new processes.

    Not a security boundary (code in the same interpreter can get around it); it stops accidents.
    """
    root, realpath, fsdecode, sep = os.path.realpath(os.getcwd()), os.path.realpath, os.fsdecode, os.sep
    flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(path) -> bool:
        try:
            real = realpath(fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real == root or real.startswith(root + sep)

    def guard(event, args) -> None:
        if event == "open":
            path, mode, oflags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (oflags & flags)
            if writing and (path is None or isinstance(path, int) or not inside(path)):
                raise PermissionError(f"sandbox: writing outside the working directory is not allowed: {path}")
        elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.link",
                       "os.symlink", "shutil.rmtree", "os.utime", "os.mkfifo", "os.mknod"):
            if not args or not inside(args[0]):
                raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")
        elif event in ("os.rename", "os.replace"):
            if not (inside(args[0]) and inside(args[1])):
                raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")
        elif event in ("os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                       "subprocess.Popen", "os.kill", "os.killpg", "ctypes.dlopen", "socket.connect",
                       "socket.bind", "socket.sendto", "socket.sendmsg", "sqlite3.connect", "os.setsid"):
            raise PermissionError(f"sandbox: {event} is not allowed")

    sys.addaudithook(guard)


def main(argv: list[str]) -> None:
    report_fd, secret_fd, folder, mode = int(argv[1]), int(argv[2]), argv[3], argv[4]
    os.write(report_fd, STARTED)
    guard = _weak_guard if argv[5:] == ["weak"] else (lambda: None)
    (_run_program if mode == "program" else _run_probes)(report_fd, secret_fd, folder, guard)


if __name__ == "__main__":
    main(sys.argv)
