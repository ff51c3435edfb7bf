"""HTML pages: every module here exporting ``router`` is mounted at the root."""
