"""Observing what Shipline does: DORA figures of delivery (`dora`) over stored records."""
