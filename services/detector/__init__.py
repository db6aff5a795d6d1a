"""toilkit detector service."""
