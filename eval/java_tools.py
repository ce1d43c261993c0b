"""Make aac-metrics' Java tools (PTB tokenizer, METEOR, SPICE) usable on this machine.

aac-metrics runs three Java programs and expects two things this environment lacks:
- the jars, normally fetched by `aac-metrics-download` into `<cache>/aac-metrics/...`. The PTB
  tokenizer (Stanford CoreNLP 3.4.1) and METEOR 1.5 jars, with METEOR's English paraphrase table,
  also ship inside the `pycocoevalcap` wheel, so `prepare_java_tool_cache` links them into
  aac-metrics' cache layout (no network needed);
- Java 8 to 13: aac-metrics refuses any newer Java (`aac_metrics.utils.checks.MAX_JAVA_MAJOR_VERSION`),
  although METEOR and the PTB tokenizer give identical results on Java 17 (the tests compare METEOR
  with pycocoevalcap's). `lifted_java_version_check` raises that limit to the detected Java for the
  duration of one call and restores it afterwards, without touching site-packages.

Everything here is detected from files and the PATH; nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Where pycocoevalcap keeps each file aac-metrics needs, relative to the pycocoevalcap package.
# The aac-metrics side of the mapping is read from aac-metrics' own constants (see `_cache_layout`).
_PYCOCOEVALCAP_FILES = {
    "ptb_tokenizer_jar": "tokenizer/stanford-corenlp-3.4.1.jar",
    "meteor_jar": "meteor/meteor-1.5.jar",
    "meteor_paraphrase_en": "meteor/data/paraphrase-en.gz",
}

JAVA_FIX = (
    "install a Java runtime (>= 8; Java 17 is tested), e.g. `apt-get install openjdk-17-jre-headless`, "
    "and put `java` on PATH or set AAC_METRICS_JAVA_PATH to the executable"
)
JAR_FIX = (
    "`pip install pycocoevalcap==1.2` (its jars are linked into the aac-metrics cache automatically) "
    "or, with network access, `aac-metrics-download --cache_path {cache} --spice false --fense false`"
)
SPICE_FIX = (
    "with network access run `aac-metrics-download --cache_path {cache} --ptb_tokenizer false "
    "--meteor false --fense false` (downloads SPICE 1.0 and Stanford CoreNLP 3.6.0, about 1 GB, "
    "into {cache}/aac-metrics/spice)"
)

# Guards the temporary change of aac-metrics' module-level Java limit against concurrent callers.
_JAVA_CHECK_LOCK = threading.RLock()


@dataclass(frozen=True)
class JavaRuntime:
    """The Java executable aac-metrics would run, or why there is none.

    `path` is the resolved executable (None when not found), `version` the string printed by
    `java -version` (e.g. "17.0.15"), `major` its major version (8 for "1.8.0_392"), and `problem`
    a sentence saying what is wrong and how to fix it (None when Java is usable).
    """

    requested: str
    path: str | None = None
    version: str | None = None
    major: int | None = None
    problem: str | None = None

    @property
    def available(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class JavaToolFiles:
    """Which jar-based tools are installed in an aac-metrics cache directory.

    Each `*_problem` is None when the tool's files are present, else a sentence naming the missing
    file and the command that installs it.
    """

    cache_path: str
    ptb_tokenizer_problem: str | None
    meteor_problem: str | None
    spice_problem: str | None


def default_cache_path() -> str:
    """aac-metrics' cache directory: `set_default_cache_path`, else $AAC_METRICS_CACHE_PATH, else ~/.cache."""
    from aac_metrics.utils.globals import get_default_cache_path

    return get_default_cache_path()


def detect_java(java_path: str | os.PathLike | None = None) -> JavaRuntime:
    """Find the Java executable aac-metrics would use and read its version.

    Args:
        java_path: executable name or path; None uses aac-metrics' default
            (`set_default_java_path`, else $AAC_METRICS_JAVA_PATH, else `java` on PATH).
    """
    if java_path is None:
        from aac_metrics.utils.globals import get_default_java_path

        java_path = get_default_java_path()
    requested = os.path.expanduser(os.path.expandvars(str(java_path)))
    resolved = shutil.which(requested)
    if resolved is None:
        where = "on PATH" if os.sep not in requested else "at that path"
        return JavaRuntime(
            requested=requested,
            problem=f"no Java executable {requested!r} found {where}; fix: {JAVA_FIX}",
        )
    resolved = os.path.realpath(resolved)
    stat = os.stat(resolved)
    # Keyed on the file's identity so that a reinstalled Java is probed again.
    version, problem = _probe_java_version(resolved, stat.st_mtime_ns, stat.st_size)
    if problem is not None:
        return JavaRuntime(requested=requested, path=resolved, problem=f"{problem}; fix: {JAVA_FIX}")
    major = _java_major(version)
    if major < 8:
        return JavaRuntime(
            requested=requested,
            path=resolved,
            version=version,
            major=major,
            problem=f"Java {version} at {resolved} is older than Java 8; fix: {JAVA_FIX}",
        )
    return JavaRuntime(requested=requested, path=resolved, version=version, major=major)


@functools.lru_cache(maxsize=8)
def _probe_java_version(resolved: str, _mtime_ns: int, _size: int) -> tuple[str | None, str | None]:
    try:
        completed = subprocess.run(
            [resolved, "-version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"`{resolved} -version` could not run ({error})"
    output = completed.stdout.decode(errors="replace")
    # `java -version` may be preceded by lines such as "Picked up JAVA_TOOL_OPTIONS: ...".
    match = re.search(r'version "([^"]+)"', output)
    if completed.returncode != 0 or match is None:
        return None, f"`{resolved} -version` did not report a version (exit {completed.returncode}: {output.strip()[:200]!r})"
    return match.group(1), None


def _java_major(version: str) -> int:
    # Java <= 8 reports "1.MAJOR.0_UPDATE"; Java >= 9 reports "MAJOR[.MINOR...]" (possibly "17-ea").
    numbers = [int(part) for part in re.findall(r"\d+", version)]
    if not numbers:
        raise ValueError(f"cannot parse Java version {version!r}")
    if numbers[0] == 1 and len(numbers) > 1:
        return numbers[1]
    return numbers[0]


def _cache_layout() -> dict[str, str]:
    """Paths of the jar-based tools inside an aac-metrics cache directory, from aac-metrics' constants."""
    from aac_metrics.functional.meteor import DNAME_METEOR_CACHE, FNAME_METEOR_JAR
    from aac_metrics.utils.tokenization import FNAME_STANFORD_CORENLP_3_4_1_JAR

    return {
        "ptb_tokenizer_jar": FNAME_STANFORD_CORENLP_3_4_1_JAR,
        "meteor_jar": FNAME_METEOR_JAR,
        # METEOR 1.5 looks for its data folder next to the jar.
        "meteor_paraphrase_en": os.path.join(DNAME_METEOR_CACHE, "data", "paraphrase-en.gz"),
    }


def _pycocoevalcap_dir() -> Path | None:
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def prepare_java_tool_cache(cache_path: str | os.PathLike | None = None) -> JavaToolFiles:
    """Link the PTB-tokenizer and METEOR files from `pycocoevalcap` into aac-metrics' cache layout.

    Files already in the cache (e.g. from `aac-metrics-download`) are kept. Links are symbolic
    (the paraphrase table alone is 60 MB); where symlinks are not allowed the files are copied.
    Dangling links left by an uninstalled pycocoevalcap are replaced. SPICE is only checked: its
    CoreNLP 3.6.0 jars are not in any wheel.

    Args:
        cache_path: aac-metrics cache directory; None uses `default_cache_path()`.
    """
    cache = os.path.expanduser(str(cache_path)) if cache_path is not None else default_cache_path()
    layout = _cache_layout()
    source_dir = _pycocoevalcap_dir()
    problems: dict[str, str | None] = {}
    for key, relative in layout.items():
        target = os.path.join(cache, relative)
        if os.path.isfile(target):
            problems[key] = None
            continue
        source = source_dir / _PYCOCOEVALCAP_FILES[key] if source_dir is not None else None
        if source is None or not source.is_file():
            problems[key] = f"missing {target}; fix: {JAR_FIX.format(cache=cache)}"
            continue
        try:
            _link_or_copy(source, target)
            problems[key] = None
        except OSError as error:
            problems[key] = f"cannot place {source} at {target} ({error}); fix: make {cache} writable or pass another cache_path"
    return JavaToolFiles(
        cache_path=cache,
        ptb_tokenizer_problem=problems["ptb_tokenizer_jar"],
        meteor_problem=problems["meteor_jar"] or problems["meteor_paraphrase_en"],
        spice_problem=_spice_problem(cache),
    )


def _link_or_copy(source: Path, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.lexists(target):  # dangling symlink
        os.remove(target)
    try:
        os.symlink(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _spice_problem(cache: str) -> str | None:
    from aac_metrics.functional.spice import check_spice_install

    try:
        check_spice_install(cache)
    except (FileNotFoundError, NotADirectoryError, PermissionError) as error:
        # aac-metrics' message ends with a generic download hint; the fix below is specific.
        detail = str(error).split(" Maybe run")[0].rstrip(". ")
        return f"SPICE 1.0 / Stanford CoreNLP 3.6.0 not installed ({detail}); fix: {SPICE_FIX.format(cache=cache)}"
    return None


@contextlib.contextmanager
def lifted_java_version_check(java: JavaRuntime) -> Iterator[None]:
    """Let aac-metrics run its Java tools on `java` even when it is newer than Java 13.

    aac-metrics compares the version against the module attribute
    `aac_metrics.utils.checks.MAX_JAVA_MAJOR_VERSION` each time a tool starts; this raises it to
    `java.major` inside the block and restores the previous value afterwards. The lower bound
    (Java 8) is untouched.
    """
    import aac_metrics.utils.checks as aac_checks

    if not java.available or java.major is None:
        raise ValueError(f"cannot run aac-metrics' Java tools: {java.problem}")
    with _JAVA_CHECK_LOCK:
        previous = aac_checks.MAX_JAVA_MAJOR_VERSION
        aac_checks.MAX_JAVA_MAJOR_VERSION = max(previous, java.major)
        try:
            yield
        finally:
            aac_checks.MAX_JAVA_MAJOR_VERSION = previous
