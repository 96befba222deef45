"""Edge of the service: connections, faults, abuse, metrics."""
