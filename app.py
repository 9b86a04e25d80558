"""The bavae demo as a Hugging Face Space: the page `bavae demo` serves, built by the same code (bavae.demo).

A Space runs `python app.py` with GRADIO_SERVER_NAME=0.0.0.0 set by the Hub; run here, it binds 127.0.0.1:7860 like
`bavae demo`. space/README.md is the Space's README (its YAML header names this file) and space/requirements.txt
installs bavae with its demo extra; docs/demo.md says how to publish the three.
"""

import os

from bavae.demo import build_demo, launch_options

demo = build_demo(os.environ.get("BAVAE_DEMO_MODEL") or None)

if __name__ == "__main__":
    demo.launch(**launch_options())
