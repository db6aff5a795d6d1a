"""toilkit command line and the embedded (single-process) runner."""
