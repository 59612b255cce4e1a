"""costspan processors."""
