"""The web server: the Flask app, its authentication, the JSON API (`api/`), the
dashboard (`dashboard/`), and what only a serving process needs (waiting claims,
hang-up watching, static files)."""
