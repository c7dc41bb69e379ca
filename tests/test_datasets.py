import hashlib
from pathlib import Path

import pandas as pd

from pipeshield.datasets import canonical_row_hashes, sha256_file, table_digest


def test_sha256_file_matches_hashlib_and_reports_progress(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000
    path = tmp_path / "d.bin"
    path.write_bytes(data)
    seen: list[int] = []
    assert sha256_file(path, seen.append) == hashlib.sha256(data).hexdigest()
    assert sum(seen) == len(data)


def test_row_hashes_are_format_and_order_independent(tmp_path: Path) -> None:
    frame = pd.DataFrame({"b": [1.5, 2.5, None], "a": [1, 2, 3], "label": ["x", "y", "x"]})
    frame.to_parquet(tmp_path / "t.parquet")
    from_parquet = pd.read_parquet(tmp_path / "t.parquet")
    assert list(canonical_row_hashes(frame)) == list(canonical_row_hashes(from_parquet))
    assert table_digest(frame) == table_digest(frame.iloc[::-1][["label", "a", "b"]])


def test_row_hashes_change_with_any_value() -> None:
    frame = pd.DataFrame({"a": [1, 2], "label": [0, 1]})
    changed = frame.copy()
    changed.loc[1, "label"] = 0
    before, after = canonical_row_hashes(frame), canonical_row_hashes(changed)
    assert before[0] == after[0] and before[1] != after[1]
    assert table_digest(frame) != table_digest(changed)
