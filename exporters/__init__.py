"""costspan exporters."""
