"""A body per person on a synthetic multi-person scene, scored against each person alone."""

from __future__ import annotations

import numpy as np
import pytest

from training.people_bodies import multi_person_errors, single_person_errors
from training.synth.people import sample_people_scene


@pytest.mark.slow
def test_bodies_of_people_together_are_as_good_as_alone(model) -> None:
    scene = sample_people_scene(2, 4, frames=12, seed=1)
    together, alone = multi_person_errors(model, scene), single_person_errors(model, scene)
    assert len(together) >= 15 and len(alone) >= 15  # both people from the fourth frame-set on
    assert np.mean(together) < 0.06 and np.mean(alone) < 0.06
    assert np.mean(together) < 1.2 * np.mean(alone)
