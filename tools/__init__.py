"""Scripts that build assets or measure the app (run as modules: ``python -m tools.soak``)."""
