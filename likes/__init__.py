"""Self-hosted like counts for static sites."""
