"""``python -m propensity``: the command line, also as a file for ``spark-submit``."""

from propensity.cli import app

if __name__ == "__main__":
    app(prog_name="propensity")
