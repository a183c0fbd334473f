"""AU-cell parser: the structures of the real strings, every real cell, and clear failures."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from schemas.sample_record import AUCode
from stag_features.adapters.au_codes import AUParseError, parse_au_cell


def codes(cell: str) -> list[list[AUCode]]:
    return [list(term.alternatives) for term in parse_au_cell(cell).terms]


def test_plain_and_unilateral_codes() -> None:
    assert codes("4+7") == [[AUCode(number=4)], [AUCode(number=7)]]
    assert codes("R12") == [[AUCode(number=12, side="R")]]
    assert codes("L1+L2") == [[AUCode(number=1, side="L")], [AUCode(number=2, side="L")]]
    assert codes("1+R2+25") == [[AUCode(number=1)], [AUCode(number=2, side="R")], [AUCode(number=25)]]


def test_asymmetric_intensity_and_reference() -> None:
    assert codes("A2") == [[AUCode(number=2, asymmetric=True)]]
    assert codes("12B") == [[AUCode(number=12, intensity="B")]]
    assert codes("4D+ref(6)+7C+43E") == [
        [AUCode(number=4, intensity="D")],
        [AUCode(number=6, reference=True)],
        [AUCode(number=7, intensity="C")],
        [AUCode(number=43, intensity="E")],
    ]
    assert codes("10A/B") == [[AUCode(number=10, intensity="A/B")]]
    assert codes("ref(L10)+A12B") == [[AUCode(number=10, side="L", reference=True)],
                                      [AUCode(number=12, asymmetric=True, intensity="B")]]
    # a referenced AU is not counted as present
    assert parse_au_cell("4D+ref(6)+7C+43E").au_numbers() == (4, 7, 43)


def test_alternatives_lips_descriptors_and_text() -> None:
    parsed = parse_au_cell("(R6 or R12)+R15")
    assert codes("(R6 or R12)+R15") == [[AUCode(number=6, side="R"), AUCode(number=12, side="R")],
                                        [AUCode(number=15, side="R")]]
    assert parsed.au_numbers() == (6, 12, 15)
    assert parsed.au_numbers(include_alternatives=False) == (15,)
    assert codes("L12 or L14") == [[AUCode(number=12, side="L"), AUCode(number=14, side="L")]]
    assert codes("A/L12") == [[AUCode(number=12, asymmetric=True), AUCode(number=12, side="L")]]
    assert parse_au_cell("A/L12").au_numbers(include_alternatives=False) == (12,)
    assert codes("T18+39") == [[AUCode(number=18, lip="T")], [AUCode(number=39)]]
    assert codes("B23") == [[AUCode(number=23, lip="B")]]
    assert codes("1+2+5+AD38+M58")[3:] == [[AUCode(number=38, prefix="AD")], [AUCode(number=58, prefix="M")]]
    assert parse_au_cell("1+2+5+AD38+M58").au_numbers() == (1, 2, 5)
    soft = parse_au_cell("R14+17+soft focus")
    assert [t.text for t in soft.terms] == [None, None, "soft focus"]
    assert soft.au_numbers() == (14, 17)


def test_unknown_empty_numeric_and_spaced_cells() -> None:
    assert parse_au_cell("?").unknown and parse_au_cell("?").terms == ()
    for empty in ("", "  ", None, float("nan")):
        assert parse_au_cell(empty).terms == () and not parse_au_cell(empty).unknown
    assert parse_au_cell(12.0).au_numbers() == (12,)  # Excel gives a lone AU as a number
    assert codes("L12 + 61") == [[AUCode(number=12, side="L")], [AUCode(number=61)]]
    assert codes("7B+ ref(43)") == [[AUCode(number=7, intensity="B")], [AUCode(number=43, reference=True)]]
    assert parse_au_cell("12+15 ").raw == "12+15"


@pytest.mark.parametrize("cell, part", [("4++7", "''"), ("12x", "'12x'"), ("(4+7", "'(4+7'"), ("L", "'L'"), ("ABC", "'ABC'")])
def test_bad_cells_name_the_cell_and_part(cell: str, part: str) -> None:
    with pytest.raises(AUParseError, match=re.escape(f"AU cell {cell!r}: cannot parse {part}")):
        parse_au_cell(cell)


@pytest.mark.parametrize(
    "relative, sheet, header, column",
    [
        ("casme2/CASME2-coding-20140508.xlsx", "Sheet1", 0, "Action Units"),
        ("samm/SAMM_Micro_FACS_Codes_v2.xlsx", "MICRO_ONLY", 13, "Action Units"),
        ("casme3/casme3_table.xlsx", "label", 0, "AU"),
        ("dfme/training_full_with_AU.xlsx", "Sheet1", 0, "AU"),
    ],
)
def test_every_real_au_cell_parses(shared_data: Path, relative: str, sheet: str, header: int, column: str) -> None:
    table = pd.read_excel(shared_data / "annotations" / relative, sheet_name=sheet, header=header)
    failures = []
    for value in table[column]:
        try:
            parsed = parse_au_cell(value)
        except AUParseError as exc:
            failures.append(str(exc))
            continue
        # every parsed cell either says '?', is empty, or yields at least one code or text
        assert parsed.unknown or parsed.terms or parsed.raw == ""
    assert failures == []


def test_uncertain_code() -> None:
    assert codes("12?+4") == [[AUCode(number=12, uncertain=True)], [AUCode(number=4)]]
