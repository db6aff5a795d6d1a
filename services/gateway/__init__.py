"""toilkit gateway service."""
