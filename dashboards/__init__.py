"""costspan dashboards."""
