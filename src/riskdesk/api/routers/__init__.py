"""API routers: every module here exporting ``router`` is mounted under ``/api/v1``."""
