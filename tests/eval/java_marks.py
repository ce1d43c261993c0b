"""Skip marks of the tests that run aac-metrics' Java tools (shared by the evaluation tests)."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

requires_java = pytest.mark.skipif(shutil.which("java") is None, reason="needs a `java` executable")
# The METEOR and PTB-tokenizer jars come with the pycocoevalcap wheel (test extra), linked into aac-metrics' cache.
requires_java_tools = pytest.mark.skipif(
    shutil.which("java") is None or importlib.util.find_spec("pycocoevalcap") is None,
    reason="needs a `java` executable and the pycocoevalcap wheel (test extra) for the jars",
)
