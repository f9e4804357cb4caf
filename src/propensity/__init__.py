"""propensity: learned, point-in-time, explained account scores for B2B account-based marketing."""

__version__ = "0.1.0"
