"""Local stand-ins for the outside services toilkit talks to (Slack), for tests and `toilkit up`."""
