"""Automatic failover: health checks of the active uplink, choosing a candidate, check and trigger scripts (doc/failover.md)."""
