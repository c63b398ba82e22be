"""Pulling answers out of model outputs, and comparing them with references."""

from __future__ import annotations

import re
import threading

_NUMBER = re.compile(r"-?\$?\s?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_LETTER_PATTERNS = [
    re.compile(r"answer is:?\s*\(?\s*([A-E])\b\s*\)?", re.IGNORECASE),
    re.compile(r"answer:\s*\(?([A-E])\b\)?", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-E])\)?\s*(?:[.):]|$)"),
    re.compile(r"\(([A-E])\)"),
]


def parse_number(text: str) -> float | None:
    """A number written like ``1,234``, ``-3.5``, ``$18.00`` or ``.5``; None if there is none."""
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


def final_number(output: str) -> float | None:
    """GSM8K-style: the number after ``####`` if present, else the last number in the text."""
    if "####" in output:
        tail = output.split("####")[-1]
        found = _NUMBER.findall(tail)
        return parse_number(found[0]) if found else None
    found = _NUMBER.findall(output)
    return parse_number(found[-1]) if found else None


def numbers_match(predicted: float | None, reference: float | None) -> bool:
    return predicted is not None and reference is not None and abs(predicted - reference) <= 1e-6 * max(1.0, abs(reference))


def choice_letter(output: str, letters: str = "ABCDE") -> str | None:
    """The chosen option letter (``The answer is (B)`` and fallbacks); None if unparseable."""
    for pattern in _LETTER_PATTERNS:
        match = pattern.search(output.strip())
        if match and match.group(1).upper() in letters:
            return match.group(1).upper()
    return None


def last_boxed(text: str) -> str | None:
    r"""The contents of the last ``\boxed{...}`` (braces balanced), or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth, j = 0, i
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
        j += 1
    return None


def math_equal(predicted: str | None, reference: str) -> bool:
    """MATH answers compared as mathematics (``\\frac{1}{2}`` equals ``0.5``) with math-verify, falling back
    to comparing normalised text only when it cannot parse either side."""
    if predicted is None:
        return False
    try:
        from math_verify import parse, verify
    except ImportError:  # pragma: no cover - a declared dependency; kept for minimal installs
        return normalise_math(predicted) == normalise_math(reference)
    # math-verify's timeouts use SIGALRM, which only the main thread may set.
    main = threading.current_thread() is threading.main_thread()
    timeout = 5 if main else None
    gold = parse(f"${reference}$", parsing_timeout=timeout)
    guess = parse(f"${predicted}$", parsing_timeout=timeout)
    if gold and guess:
        return bool(verify(gold, guess, timeout_seconds=timeout))
    return normalise_math(predicted) == normalise_math(reference)


_LATEX_NOISE = [r"\left", r"\right", r"\!", r"\,", r"\;", r"\:", "$", r"\displaystyle", "^\\circ", "^{\\circ}"]


def normalise_math(answer: str | None) -> str | None:
    """Canonical text for comparing MATH answers (spacing, \\dfrac, \\text{}, trailing dots)."""
    if answer is None:
        return None
    text = answer.strip()
    for noise in _LATEX_NOISE:
        text = text.replace(noise, "")
    text = re.sub(r"\\text\{\s*([^}]*)\}", r"\1", text)
    text = re.sub(r"\\(?:d|t)frac", r"\\frac", text)
    text = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", text)
    text = text.replace(" ", "").rstrip(".")
    if text.startswith("0.") is False and re.fullmatch(r"-?\d+\.0+", text):
        text = text.split(".")[0]
    return text


def extract_code(output: str) -> str:
    """The first fenced code block, else the whole output."""
    match = re.search(r"```(?:python|py)?\s*\n(.*?)```", output, re.DOTALL)
    if match:
        return match.group(1)
    match = re.search(r"```(?:python|py)?\s*\n(.*)", output, re.DOTALL)  # an unclosed block at the token limit
    return match.group(1) if match else output
