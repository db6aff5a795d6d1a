"""toilkit notifier service."""
