"""The per-drop stages after ingest, in the order they run on a drop: the one place a new stage is registered."""

from __future__ import annotations

from tasks.faces import FACES_STAGE
from tasks.gender import GENDER_STAGE
from tasks.identify import IDENTIFY_STAGE
from tasks.mating import MATING_STAGE
from tasks.segments import SEGMENTS_STAGE
from tasks.stages import DropStage

STAGES: dict[str, DropStage] = {
    stage.name: stage for stage in (FACES_STAGE, GENDER_STAGE, IDENTIFY_STAGE, SEGMENTS_STAGE, MATING_STAGE)
}
