"""Stage 10's building blocks (groundwork for issue 7): writing exports and proving parity."""
