"""Test-wide environment, set before anything imports huggingface_hub (it reads these once, at import).

No test may write to the user's Hugging Face cache or call home: HF_HOME points into a throwaway folder
and telemetry is off. Tests that need a Hub start tests/hub_server.HubServer and pass its env to subprocesses.
"""

import os
import tempfile

os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="bavae-tests-hf-")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_XET_CACHE"] = os.path.join(os.environ["HF_HOME"], "xet")
os.environ.setdefault("BAVAE_CACHE", tempfile.mkdtemp(prefix="bavae-tests-cache-"))
