"""Delivery: the outbox carried out, in order per lane, at each destination's pace."""
