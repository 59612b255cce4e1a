"""costspan instrumentation."""
