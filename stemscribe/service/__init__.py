"""The HTTP service: `create_app(settings)` builds the FastAPI app (see `stemscribe serve`)."""

from stemscribe.service.app import create_app

__all__ = ["create_app"]
