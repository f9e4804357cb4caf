"""propensity: learned, point-in-time, explained account scores for B2B account-based marketing."""

import os

# LightGBM's OpenMP threads spin while waiting by default; on a busy machine (a shared CI runner,
# a notebook next to a test run) that made 2-thread fits up to 100x slower. Passive waiting costs
# little when the machine is idle. Set before LightGBM loads; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
