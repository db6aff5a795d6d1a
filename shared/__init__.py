"""toilkit's shared library: event contracts, settings, AWS clients, topology, publishing,
idempotency and the SQS worker runtime. Contracts and runtime only, no business logic."""
