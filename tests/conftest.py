"""Test-wide environment and the shared fixtures.

The environment is set here, before anything imports huggingface_hub (it reads HF_* variables once, at import):
the shell's HF_HUB_OFFLINE, HF_ENDPOINT, tokens and BAVAE_* settings are dropped, HF_HOME points into a
throwaway folder and telemetry is off, so no test writes to the user's cache, calls home, or passes or fails
because of how the shell was set up. The autouse fixture below clears them again for every test. Tests that need a
Hub start tests/hub_server.HubServer and pass its env to subprocesses; subprocesses get ``helpers.clean_env()``.

No silent skips: missing data or bundled weights fail with a message naming the fix. Only tests marked ``cuda``
skip (with a reason) where torch sees no GPU.
"""

import os
import tempfile

for _key in list(os.environ):
    if _key.startswith(("HF_", "HUGGINGFACE_", "BAVAE_")):
        del os.environ[_key]
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="bavae-tests-hf-")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_XET_CACHE"] = os.path.join(os.environ["HF_HOME"], "xet")
SESSION_CACHE = os.environ["BAVAE_CACHE"] = tempfile.mkdtemp(prefix="bavae-tests-cache-")  # dSprites cache

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """Every test starts without HF_HUB_OFFLINE, HF_ENDPOINT or any BAVAE_* setting (the session's dataset cache
    aside), whatever an earlier test or the shell left in os.environ."""
    for key in list(os.environ):
        if key in ("HF_HUB_OFFLINE", "HF_ENDPOINT") or key.startswith("BAVAE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BAVAE_CACHE", SESSION_CACHE)


@pytest.fixture(scope="session")
def bundled_default() -> str:
    """The name of the bundled default model, after checking its files are in the installed package: a checkout
    without them fails here, naming the fix, instead of skipping."""
    from helpers import require_bundled_default

    return require_bundled_default()


@pytest.fixture(scope="session")
def fashion_mnist_dir():
    """The installed Fashion-MNIST folder (fails, naming the apt-get command, when it is not installed)."""
    from helpers import require_fashion_mnist

    return require_fashion_mnist()


# `make test` runs two pytest-xdist workers with --dist loadfile. Most files keep their tests together on one worker
# (their module fixtures, such as the bad-input table or a Hub server, are then built once); the two files whose
# long tests share only cheap fixtures are spread test by test, so that neither worker waits on one long file.
# (xdist's loadgroup marks do nothing under pytest 9, which no longer reads the node id xdist rewrites: every file
# was spread and the bad-input table built twice: pytest-dev/pytest-xdist#1386, open. xdist's scheduler hook is its
# public way to say what goes together.)
SPREAD_BY_TEST = {"test_train.py", "test_export.py"}


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: a run without it (-p no:xdist) does not know it
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesExceptTheLongOnes(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path.rsplit("/", 1)[-1] in SPREAD_BY_TEST else path

    return FilesExceptTheLongOnes(config, log)
