"""The pure logic of stage 05 (clean): quality filters, PII, dedup, chunking.

    from brewslm.clean import (Deduper, QualityConfig, check_quality, chunk_text, find_pii,
                               map_text, redact, row_text)

No database, no files, no events: `brewslm.stages.clean` wires these into the stage, writes
the ledger and emits the events. Reason codes returned here: pii_found is the stage's;
quality gives empty_answer, too_short, too_long, mostly_non_text, repeated_lines,
repeated_ngrams, answer_equals_prompt; dedup gives exact_duplicate, near_duplicate.
"""

from brewslm.clean.chunking import TokenWindow, chunk_text, chunk_windows
from brewslm.clean.dedup import Deduper, exact_key, normalize
from brewslm.clean.pii import PLACEHOLDERS, PiiSpan, find_pii, redact
from brewslm.clean.quality import QualityConfig, check_quality
from brewslm.clean.text import map_text, prompt_and_answer, row_text

__all__ = [
    "PLACEHOLDERS",
    "Deduper",
    "PiiSpan",
    "QualityConfig",
    "TokenWindow",
    "check_quality",
    "chunk_text",
    "chunk_windows",
    "exact_key",
    "find_pii",
    "map_text",
    "normalize",
    "prompt_and_answer",
    "redact",
    "row_text",
]
