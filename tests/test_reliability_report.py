"""The reliability report renders every case with its outcome and sums the recorded figures."""

from tests.fixtures.reliability import Row, render


def test_report_lists_cases_by_area_and_sums_figures() -> None:
    rows = [
        Row("fault", "Vault down", "refused", "pass", "VaultUnavailableError", {"bytes_lost": 0}),
        Row("fault", "disk | full", "no partial file", "FAIL", "AssertionError", {"bytes_lost": 3}),
        Row("load", "8 encrypt jobs", "all succeed", "pass", "8/8", {"concurrent_jobs": 8}),
    ]
    text = render(rows)
    assert "| fault | 2 | 1 | 1 | 0 |" in text
    assert "| load | 1 | 1 | 0 | 0 |" in text
    assert "| bytes_lost | 3 |" in text and "| concurrent_jobs | 8 |" in text
    assert "disk \\| full" in text  # a pipe in a case cannot break the table
    assert "## Hostile input" not in text  # areas without cases get no section
