"""Serving: an OpenAI-compatible HTTP app over the promoted model (openai_app) and the
backends that load an export and stream text from it (backends).

    from brewslm.serving import ActiveModel, create_serving_app
    app = create_serving_app(resolve_active, record)   # resolve_active() -> ActiveModel | None
"""

from brewslm.serving.backends import ActiveModel, Backend, load_backend
from brewslm.serving.openai_app import RequestRecord, create_serving_app

__all__ = ["ActiveModel", "Backend", "RequestRecord", "create_serving_app", "load_backend"]
