"""`python -m brewslm ...` is the `brewslm` command (for environments without the script)."""

from brewslm.cli import app

app(prog_name="brewslm")
