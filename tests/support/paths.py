"""Where the suite lives and where it keeps its state (a fresh temporary FLOWDECK_HOME)."""

from __future__ import annotations

import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_HOME = Path(tempfile.mkdtemp(prefix="flowdeck-test-"))
