"""toilkit batch service."""
