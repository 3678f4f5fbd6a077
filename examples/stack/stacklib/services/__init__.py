"""One module per service; each runs as `python -m stacklib.services.NAME --box DIR`."""
