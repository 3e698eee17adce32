"""Several people: cross-view association (calibrated rigs) and tracking with stable ids (pure numpy)."""

from engine.people.associate import Group, associate
from engine.people.step import associate_and_track
from engine.people.track import IdCounter, Tracker, Tracker2D, body_size

__all__ = ["Group", "IdCounter", "Tracker", "Tracker2D", "associate", "associate_and_track", "body_size"]
