"""Build and draw the default body: ``python -m tools.body.build_default_body``,
``python -m tools.body.build_display_mesh``, ``python -m tools.body.picture``."""
