"""docs/reliability.md lists every test marked ``fault``: regenerate it with
``bash scripts/test.sh tests -m fault --fault-table docs/reliability.md``."""
from pathlib import Path

import pytest

TABLE = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def test_every_fault_test_is_in_the_table(request):
    ids = getattr(request.config, "fault_ids", [])
    if not ids:
        pytest.skip("no fault-marked test collected in this run")
    text = TABLE.read_text(encoding="utf-8") if TABLE.is_file() else ""
    missing = [i for i in ids if f"`{i}`" not in text]
    assert not missing, (f"{len(missing)} fault test(s) missing from {TABLE.name}; regenerate "
                         f"it: bash scripts/test.sh tests -m fault --fault-table docs/reliability.md"
                         f" (first: {missing[:3]})")
