"""Write bavae.zoo.zoo_table() between the zoo-table markers of README.md (tests/test_docs.py checks the copy)."""

import re
from pathlib import Path

from bavae.zoo import zoo_table

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
text = re.sub(
    r"(<!-- zoo-table:start -->\n).*?(<!-- zoo-table:end -->)",
    lambda m: m[1] + zoo_table() + "\n" + m[2],
    text,
    flags=re.S,
)
readme.write_text(text)
print(zoo_table())
