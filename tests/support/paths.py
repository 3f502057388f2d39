"""Where the suite lives and where it keeps its state (a fresh temporary FLOWDECK_HOME), and
the suite's own copy of the example definitions.

A user may add workflows of their own to definitions/; the suite must stay green. So the
tests never read definitions/ itself: they read `EXAMPLE_DEFINITIONS`, a copy made once per
session of exactly the files in `EXAMPLE_FILES` (the examples the tests rely on). A file a
user adds is not copied; an example that is missing or renamed fails here, by name.
`FLOWDECK_TEST_EXAMPLES_SOURCE` points the copy at another directory (the test that proves
an extra workflow leaves the suite green uses it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_HOME = Path(tempfile.mkdtemp(prefix="flowdeck-test-"))

EXAMPLE_FILES = (
    "follow_up.yaml",
    "follow_up.test.yaml",
    "hello.yaml",
    "hello.test.yaml",
    "lookup_contact.yaml",
    "lookup_contact.test.yaml",
    "score_lead.test.yaml",
    "score_lead/v1.yaml",
    "score_lead/v2.yaml",
    "score_lead/v3.yaml",
    "score_lead/v3.test.yaml",
)


def copy_examples(source: Path, target: Path) -> Path:
    """Copy the example files (and only them) from `source` into `target`."""
    missing = [name for name in EXAMPLE_FILES if not (source / name).is_file()]
    if missing:
        raise RuntimeError(f"the suite relies on these example definitions, missing from {source}: {missing}")
    for name in EXAMPLE_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target / name)
    return target


EXAMPLES_SOURCE = Path(os.environ.get("FLOWDECK_TEST_EXAMPLES_SOURCE") or ROOT / "definitions")
EXAMPLE_DEFINITIONS = copy_examples(EXAMPLES_SOURCE, TEST_HOME / "examples" / "definitions")
# beside it, schemas/ as in the repository: the examples' modelines (`$schema=../schemas/...`)
# keep pointing at the real schema
(TEST_HOME / "examples" / "schemas").symlink_to(ROOT / "schemas", target_is_directory=True)
