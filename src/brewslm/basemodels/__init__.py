"""Base models: resolve what a user names as the model to fine-tune, and build the builtin one.

    from brewslm.basemodels import resolve_base_model, validate_base_model_ref
    model = resolve_base_model("builtin:tiny")   # or a local folder, or "owner/name[@rev]"
    model.path, model.kind, model.describe()

reference.py parses and resolves references; builtin_tiny.py builds `builtin:tiny` offline
from the shipped corpus.txt (regenerate that file with make_corpus.py).
"""

from brewslm.basemodels.builtin_tiny import build_builtin_tiny, default_builtin_dir
from brewslm.basemodels.reference import (
    KNOWN_BUILTINS,
    ResolvedModel,
    resolve_base_model,
    validate_base_model_ref,
)

__all__ = [
    "KNOWN_BUILTINS",
    "ResolvedModel",
    "build_builtin_tiny",
    "default_builtin_dir",
    "resolve_base_model",
    "validate_base_model_ref",
]
