"""Quote-tolerant ids and days: the OpenAPI pattern says exactly which text is accepted."""

from __future__ import annotations

import re
from datetime import date

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from lof.api.params import DAY_PATTERN, ID_PATTERN, MAX_ID, day_from_text, id_from_text

# digits, both quotes and whitespace (ASCII and not), and a few other characters
_TEXT = st.text(alphabet=st.sampled_from("0123456789\"' \t\n\u00a0\u3000x-+.٣"), max_size=14)


@given(_TEXT)
def test_id_pattern_matches_exactly_the_accepted_text(text: str) -> None:
    number = id_from_text(text)
    matched = re.fullmatch(ID_PATTERN, text) is not None
    if number is not None:
        assert matched
    elif matched:  # the pattern cannot say "positive" or "at most 2**63 - 1"
        digits = int(text.strip().strip('"').strip("'").strip())
        assert digits == 0 or digits > MAX_ID


@given(_TEXT)
def test_day_pattern_matches_exactly_the_accepted_text(text: str) -> None:
    day = day_from_text(text)
    matched = re.fullmatch(DAY_PATTERN, text) is not None
    if day is not None:
        assert matched
    elif matched:  # the pattern cannot say "a real calendar day of the years 2000-2099"
        digits = text.strip().strip('"').strip("'").strip()
        assert len(digits) == 8 and digits.isdigit()


@pytest.mark.parametrize(
    ("text", "expected"),
    [('"12"', 12), ("'12'", 12), (' "12" ', 12), ("\"'12'\"", 12), ("'\"12\"'", None)],
)
def test_quotes_are_taken_off_outer_double_then_single(text: str, expected: int | None) -> None:
    assert id_from_text(text) == expected
    assert (re.fullmatch(ID_PATTERN, text) is not None) is (expected is not None)


def test_ids_are_bounded_before_conversion() -> None:
    assert id_from_text("9" * 5000) is None  # past int()'s 4,300 digits: refused on length
    assert id_from_text(str(2**53 - 1)) == MAX_ID == 2**53 - 1
    assert id_from_text(str(2**53)) is None and id_from_text("0" * 15 + "12") is None


def test_days_quoted_or_not() -> None:
    assert day_from_text('"20230325"') == date(2023, 3, 25)
    assert day_from_text("18991231") is None
    assert day_from_text("19991231") is None and day_from_text("21000101") is None
    assert day_from_text("20991231") == date(2099, 12, 31)
    assert day_from_text("00010101") is None
    assert day_from_text("20231340") is None


def test_openapi_states_the_accepted_text(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/predictions"]["get"]
    schemas = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert schemas["predicted_dt"]["type"] == "string"
    assert schemas["predicted_dt"]["pattern"] == DAY_PATTERN
    assert schemas["class_id"]["pattern"] == ID_PATTERN
    assert schemas["class_id"]["examples"] == ["12"]
    history = client.get("/openapi.json").json()["paths"][
        "/classes/{class_id}/students/{user_id}/history"
    ]["get"]
    assert {p["name"]: p["schema"]["pattern"] for p in history["parameters"]} == {
        "class_id": ID_PATTERN,
        "user_id": ID_PATTERN,
    }


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        (
            {"predicted_dt": '"20230325"', "class_id": "x"},
            "class_id must be a positive integer, e.g. 12; got 'x'",
        ),
        (
            {"predicted_dt": "2023", "class_id": "x"},  # the first malformed value only
            "predicted_dt must be a date as YYYYMMDD, e.g. 20230325, from 20000101 to 20991231; "
            "got '2023'",
        ),
        (
            {"class_id": "x"},  # a missing parameter is named before malformed ones
            "predicted_dt is required: a date as YYYYMMDD, e.g. 20230325, "
            "from 20000101 to 20991231",
        ),
    ],
)
def test_refusals_name_the_parameter_and_the_value(
    client: TestClient, auth: dict[str, str], query: dict[str, str], detail: str
) -> None:
    response = client.get("/predictions", params=query, headers=auth)
    assert response.status_code == 422
    assert response.json() == {"detail": detail}
