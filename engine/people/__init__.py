"""Several people: cross-view association (calibrated rigs) and tracking with stable ids (pure numpy)."""

from engine.people.associate import Group, associate
from engine.people.track import IdCounter, Tracker, Tracker2D, body_size

__all__ = ["Group", "IdCounter", "Tracker", "Tracker2D", "associate", "body_size"]
