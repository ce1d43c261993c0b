import pytest

from llm_aac.processing.json_lines import iter_json_lines


def test_yields_objects_with_their_line_numbers_and_skips_blank_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"b": [2, 3]}\n', encoding="utf-8")
    assert list(iter_json_lines(path)) == [(1, {"a": 1}), (4, {"b": [2, 3]})]


def test_errors_name_the_file_and_the_line(tmp_path):
    with pytest.raises(ValueError, match=r"missing.jsonl: no such file"):
        list(iter_json_lines(tmp_path / "missing.jsonl"))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.jsonl, line 2: not JSON"):
        list(iter_json_lines(broken))
    listed = tmp_path / "list.jsonl"
    listed.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"list.jsonl, line 2: expected a JSON object, got list"):
        list(iter_json_lines(listed))
