import importlib.util
import os
import stat

import pytest

from llm_aac.eval.java_tools import (
    JavaRuntime,
    _java_major,
    detect_java,
    lifted_java_version_check,
    prepare_java_tool_cache,
)
from java_marks import requires_java

requires_pycocoevalcap = pytest.mark.skipif(
    importlib.util.find_spec("pycocoevalcap") is None, reason="needs the pycocoevalcap wheel (test extra)"
)


@pytest.mark.parametrize(
    "version, major", [("1.8.0_392", 8), ("11.0.2", 11), ("17.0.15", 17), ("21-ea", 21), ("9", 9)]
)
def test_java_major(version, major):
    assert _java_major(version) == major


@requires_java
def test_detect_java_reads_the_version():
    java = detect_java()
    assert java.available and java.problem is None
    assert os.path.isabs(java.path) and java.major >= 8
    assert str(java.major) in java.version


def test_detect_java_missing_from_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("AAC_METRICS_JAVA_PATH", raising=False)
    java = detect_java()
    assert not java.available and java.path is None
    assert "no Java executable 'java' found on PATH" in java.problem
    assert "AAC_METRICS_JAVA_PATH" in java.problem


def test_detect_java_rejects_a_program_that_is_not_java(tmp_path):
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'hello'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    java = detect_java(fake)
    assert not java.available
    assert "did not report a version" in java.problem


@requires_java
def test_lifted_check_accepts_this_java_inside_and_restores_outside():
    import aac_metrics.utils.checks as aac_checks

    java = detect_java()
    original = aac_checks.MAX_JAVA_MAJOR_VERSION
    with lifted_java_version_check(java):
        assert aac_checks.check_java_path(java.path)
        assert aac_checks.MAX_JAVA_MAJOR_VERSION >= java.major
    assert aac_checks.MAX_JAVA_MAJOR_VERSION == original
    with pytest.raises(KeyError):
        with lifted_java_version_check(java):
            raise KeyError("boom")
    assert aac_checks.MAX_JAVA_MAJOR_VERSION == original
    if java.major > original:
        assert not aac_checks.check_java_path(java.path)


def test_lifted_check_refuses_missing_java():
    with pytest.raises(ValueError, match="cannot run aac-metrics' Java tools: no java"):
        with lifted_java_version_check(JavaRuntime(requested="java", problem="no java")):
            pass


@requires_pycocoevalcap
def test_prepare_cache_links_pycocoevalcap_jars_into_aac_metrics_layout(tmp_path):
    from aac_metrics.functional.meteor import FNAME_METEOR_JAR
    from aac_metrics.utils.tokenization import FNAME_STANFORD_CORENLP_3_4_1_JAR

    files = prepare_java_tool_cache(tmp_path)
    assert files.ptb_tokenizer_problem is None and files.meteor_problem is None
    tokenizer_jar = tmp_path / FNAME_STANFORD_CORENLP_3_4_1_JAR
    meteor_jar = tmp_path / FNAME_METEOR_JAR
    assert tokenizer_jar.is_file() and meteor_jar.is_file()
    assert (meteor_jar.parent / "data" / "paraphrase-en.gz").is_file()
    # SPICE's CoreNLP 3.6.0 is in no wheel: reported with the download command.
    assert "aac-metrics-download" in files.spice_problem and str(tmp_path) in files.spice_problem

    # A dangling link (pycocoevalcap uninstalled since) is replaced; existing files are kept.
    tokenizer_jar.unlink()
    os.symlink(tmp_path / "gone.jar", tokenizer_jar)
    meteor_jar.unlink()
    meteor_jar.write_bytes(b"downloaded by aac-metrics-download")
    assert prepare_java_tool_cache(tmp_path).ptb_tokenizer_problem is None
    assert tokenizer_jar.is_file()
    assert meteor_jar.read_bytes() == b"downloaded by aac-metrics-download"


def test_prepare_cache_without_pycocoevalcap_reports_the_fix(monkeypatch, tmp_path):
    import llm_aac.eval.java_tools as java_tools

    monkeypatch.setattr(java_tools, "_pycocoevalcap_dir", lambda: None)
    files = prepare_java_tool_cache(tmp_path)
    assert "pip install pycocoevalcap==1.2" in files.ptb_tokenizer_problem
    assert "stanford-corenlp-3.4.1.jar" in files.ptb_tokenizer_problem
    assert "meteor-1.5.jar" in files.meteor_problem
