"""The four toilkit services. They never import each other; they share only events."""
