"""Shared fixtures.

At import, before any test module imports the package, ``WAV2KP_HOME`` is pointed at a fresh
temporary folder unless the caller already set one (``make test`` sets it for pytest and nbval
together, so the notebooks reuse the corpus built here). A plain ``pytest`` therefore never
writes to the repository's ``data/`` or ``reports/``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

if not os.environ.get("WAV2KP_HOME"):
    os.environ["WAV2KP_HOME"] = tempfile.mkdtemp(prefix="wav2kp-pytest-")
    # ours alone: removed when the session ends (a home set by the caller is left alone)
    atexit.register(shutil.rmtree, os.environ["WAV2KP_HOME"], ignore_errors=True)

from wav2kp import config  # noqa: E402  (after WAV2KP_HOME is settled)

#: Fixtures that build media (the quick corpus, its extraction) or train: a test using one is
#: slow, and ``make test-fast`` leaves it out.
SLOW_FIXTURES = {"quick_corpus", "quick_clips", "quick_study"}


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ARG001 - pytest's signature
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def quick_corpus():
    """The bundled corpus' quick subset (24 clips) built under ``$WAV2KP_HOME/data/raw/bundled``,
    once per session (~20 s on 2 cores; a no-op when it is already current there).

    Returns the :class:`wav2kp.corpus.bundled.BuildReport`; ``.out_dir`` is the folder.
    """
    from wav2kp.corpus import bundled

    out_dir = config.raw_dir("bundled")
    report = bundled.build(out_dir=out_dir, subset="quick", n_jobs=2, progress=False)
    assert not report.failures, f"quick corpus failed to build: {report.failures}"
    assert report.n_built + report.n_cached == 24
    return report


@pytest.fixture(scope="session")
def real_samples() -> Path:
    """``../shared/real_samples`` (real recordings kept beside the checkout); skipped when absent."""
    folder = config.SHARED_REAL_SAMPLES
    if not folder.is_dir():
        pytest.skip(f"real samples not available ({folder} is absent)")
    return folder


@pytest.fixture(scope="session")
def quick_clips(quick_corpus):
    """The quick corpus' clip table, its clips extracted under ``data/interim/bundled``."""
    from wav2kp import corpus as corpora
    from wav2kp.corpus import bundled
    from wav2kp.extraction import landmarks

    clips = bundled.select(corpora.discover(quick_corpus.out_dir), "quick")
    report = landmarks.extract(clips, corpus="bundled", n_jobs=2, progress=False)
    assert len(report.failures) == 0, report.failures.to_dict("records")
    return clips


@pytest.fixture(scope="session")
def quick_study(quick_clips):
    """The whole quick study through the study runner, once for the test session (its numbers
    are checked by tests/test_evaluation.py, its pages by tests/test_browser.py; nbval then
    re-executes the notebooks on the same data). Returns the notebooks' runs."""
    from wav2kp import study

    return study.run_study(profile="quick", live=False)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system's Chromium for the browser tests; they skip without one, unless
    ``WAV2KP_REQUIRE_BROWSER=1`` (``.ci/run`` sets it) makes its absence a failure."""
    from wav2kp import browser

    try:
        return browser.find_chromium()
    except browser.BrowserMissing as err:
        if os.environ.get("WAV2KP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"WAV2KP_REQUIRE_BROWSER=1 but {err}")
        pytest.skip(str(err))
