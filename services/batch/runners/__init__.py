"""Runners: where a validated, authorized, approved command actually runs."""
