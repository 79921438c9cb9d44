"""``python -m control_plane.edgectl``: the operator CLI (same as the edgectl command)."""

import sys

from control_plane.edgectl.cli import main

sys.exit(main())
