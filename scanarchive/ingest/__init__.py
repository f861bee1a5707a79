"""One scan file -> one or more sealed, verified records (identify, pipeline, batch)."""
