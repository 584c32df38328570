"""Recorders and their schedules over REST."""
