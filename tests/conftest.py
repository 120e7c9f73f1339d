"""The test tree mirrors the package: engine/, qemu/, analysis/, chapters/, course/, browser/.

Helpers the folders share (``notebook_cells``, ``tool_loader``) live here at the top, on the
import path.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
