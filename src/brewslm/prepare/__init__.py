"""Stage 06's pure logic: encode rows with a loss mask, split them, describe their lengths.

    from brewslm.prepare import encode_row, assign_splits, near_duplicate_groups, histogram
    enc = encode_row(row, tokenizer, max_tokens=512)   # Encoded, or (None, reason_code)

encode.py renders and tokenizes one canonical row (sft, preference, pretrain) and masks every
non-assistant token; split.py groups near-duplicates and assigns seeded, leak-free train/eval
splits; stats.py computes token-length statistics and draws histograms. No database, no
ledger: stages/prepare.py wires these into the stage.
"""

from brewslm.prepare.encode import (
    IGNORE_INDEX,
    Encoded,
    encode_row,
    template_hash,
    tokenizer_hash,
)
from brewslm.prepare.split import assign_splits, near_duplicate_groups
from brewslm.prepare.stats import (
    histogram,
    histogram_png,
    length_stats,
    render_terminal,
    write_histogram_html,
    write_histogram_png,
)

__all__ = [
    "IGNORE_INDEX",
    "Encoded",
    "assign_splits",
    "encode_row",
    "histogram",
    "histogram_png",
    "length_stats",
    "near_duplicate_groups",
    "render_terminal",
    "template_hash",
    "tokenizer_hash",
    "write_histogram_html",
    "write_histogram_png",
]
