"""Parse the AU cell of an annotation sheet into an ``AUAnnotation``.

Grammar (whitespace around ``+``, ``or``, ``/`` and parentheses is ignored)::

    cell        := "" | "?" | term ("+" term)*
    term        := choice | "(" choice ")" | text
    choice      := alternative ("or" alternative)*          # "R6 or R12"
    alternative := "ref(" code ")" | code ("/" code)*        # "ref(6)", "12/14"
    code        := [sides] [prefix] number [intensity] ["?"]
    sides       := side ("/" side)*                          # "A/L12": A12 or L12
    side        := "L" | "R"          (unilateral left / right)
                 | "A"                (asymmetric: both sides, one stronger)
                 | "T" | "B"          (FACS top / bottom lip, e.g. T18, B23)
    prefix      := "AD" | "M" | "AU"  (action descriptor, movement code, a literal "AU")
    intensity   := "A".."E" ("/" "A".."E")*                   # "43E", "10A/B"
    text        := words without digits                     # "soft focus"

Examples from the real sheets: ``4+7``, ``R12``, ``L1+L2``, ``1+R2+25``, ``A2``,
``12B``, ``4D+ref(6)+7C+43E``, ``(R6 or R12)+R15``, ``10A/B``, ``T18+39``,
``1+2+5+AD38+M58``, ``R14+17+soft focus``, ``?`` (unknown) and an empty cell.

Anything else raises ``AUParseError`` (a ValueError) naming the cell and the
part that failed; adapters turn it into a reported bad row.
"""
from __future__ import annotations

import math
import re

from schemas.sample_record import AUAnnotation, AUCode, AUTerm


class AUParseError(ValueError):
    """An AU cell that does not follow the grammar of this module."""

    def __init__(self, cell: str, part: str, reason: str):
        self.cell = cell
        self.part = part
        super().__init__(f"AU cell {cell!r}: cannot parse {part!r}: {reason}")


_CODE = re.compile(
    r"""^(?P<sides>[LRATB](?:/[LRATB])*)?   # side markers, possibly alternatives
        (?P<prefix>AD|AU|M)?
        (?P<number>\d{1,3})
        (?P<intensity>[A-E](?:/[A-E])*)?
        (?P<uncertain>\?)?$""",
    re.VERBOSE,
)
_REFERENCE = re.compile(r"^REF\s*\(\s*(?P<inner>[^()]+?)\s*\)$", re.IGNORECASE)
# free text: letters, spaces, hyphens, at least one lower-case letter (codes are upper case)
_TEXT = re.compile(r"^(?=.*[a-z])[A-Za-z][A-Za-z \-']+[A-Za-z]$")
_OR = re.compile(r"\s+or\s+", re.IGNORECASE)
_UNKNOWN_CELLS = frozenset({"?", "??"})


def _split_top_level(cell: str, separator: str = "+") -> list[str]:
    """Split on ``separator`` outside parentheses."""
    parts: list[str] = []
    depth, current = 0, []
    for char in cell:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise AUParseError(cell, cell, "unbalanced ')'")
        if char == separator and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise AUParseError(cell, cell, "unbalanced '('")
    parts.append("".join(current).strip())
    return parts


def _codes(cell: str, text: str, reference: bool = False) -> list[AUCode]:
    """One code, or several when side markers or whole codes are joined by '/'."""
    token = re.sub(r"\s+", "", text).upper()
    match = _CODE.match(token)
    if match is None:
        if "/" in token and not reference:
            pieces = token.split("/")
            if all(_CODE.match(p) for p in pieces):
                return [code for piece in pieces for code in _codes(cell, piece)]
        raise AUParseError(cell, text, "not an AU code ([L|R|A|T|B][AD|M]number[A-E])")
    sides = match["sides"].split("/") if match["sides"] else [None]
    codes = []
    for side in sides:
        codes.append(
            AUCode(
                number=int(match["number"]),
                prefix=None if match["prefix"] in (None, "AU") else match["prefix"],
                side=side if side in ("L", "R") else None,
                asymmetric=side == "A",
                lip=side if side in ("T", "B") else None,
                intensity=match["intensity"],
                reference=reference,
                uncertain=match["uncertain"] is not None,
            )
        )
    return codes


def _alternative(cell: str, text: str) -> list[AUCode]:
    reference = _REFERENCE.match(text)
    if reference is not None:
        return _codes(cell, reference["inner"], reference=True)
    return _codes(cell, text)


def _term(cell: str, text: str) -> AUTerm:
    if not text:
        raise AUParseError(cell, text, "empty term between '+' signs")
    inner = text
    if inner.startswith("(") and inner.endswith(")") and _REFERENCE.match(inner) is None:
        inner = inner[1:-1].strip()
    choices = _OR.split(inner)
    if len(choices) == 1 and _TEXT.match(inner) and _CODE.match(inner.upper().replace(" ", "")) is None:
        return AUTerm(text=inner)
    codes = [code for choice in choices for code in _alternative(cell, choice.strip())]
    return AUTerm(alternatives=tuple(codes))


def is_blank(value: object) -> bool:
    """True for an empty cell as pandas gives it (None, NaN, '' or whitespace)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def parse_au_cell(value: object) -> AUAnnotation:
    """Parse one AU cell (a string, a number such as 12 or 12.0, or empty)."""
    if is_blank(value):
        return AUAnnotation()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    cell = str(value).strip()
    if cell in _UNKNOWN_CELLS:
        return AUAnnotation(raw=cell, unknown=True)
    terms = tuple(_term(cell, part) for part in _split_top_level(cell))
    return AUAnnotation(raw=cell, terms=terms)
