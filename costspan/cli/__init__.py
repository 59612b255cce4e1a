"""costspan cli."""
