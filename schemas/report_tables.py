"""Columns of the catalog's summary tables (gender_ratio, mating_success, model_cards): what the report shows."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa

GenderLevel = Literal["deployment", "overall"]
MatingLevel = Literal["season", "overall"]

GENDER_RATIO = pa.schema(
    [
        ("level", pa.string()),  # deployment | overall
        ("site", pa.string()),
        ("deployment_id", pa.string()),
        ("males", pa.int64()),  # animals counted male: known_males + the machine's male calls
        ("females", pa.int64()),
        ("known_males", pa.int64()),  # of males, those a keeper's correction or the registry says are male
        ("known_females", pa.int64()),
        ("unknown", pa.int64()),  # animals left in the abstain band with no known sex; not in n
        ("n", pa.int64()),  # males + females
        ("estimate", pa.float64()),  # raw male share males / n
        ("ci_low", pa.float64()),  # Wilson 95%
        ("ci_high", pa.float64()),
        ("corrected", pa.float64()),  # known animals as counted, machine calls Rogan-Gladen corrected (clipped)
        ("corrected_ci_low", pa.float64()),  # 95%, carrying the uncertainty of Se and Sp (corrected_share_interval)
        ("corrected_ci_high", pa.float64()),
        ("interval_method", pa.string()),  # lang-reiczigel; lang-reiczigel+known (known added); known (all known)
        ("validation_variance_share", pa.float64()),  # share of the interval's variance due to Se and Sp estimates
        ("width_4x_validation", pa.float64()),  # corrected interval width with 4x the validation animals
        ("width_4x_counted", pa.float64()),  # corrected interval width with 4x the animals counted
        ("wide_because", pa.string()),  # one sentence: label more animals, or observe longer
        ("model_version", pa.string()),  # gender model of the counted animals (name@vN)
        ("rates_face_source", pa.string()),  # faces the rates below were measured on: keeper | detector | both (+)
        ("sensitivity", pa.float64()),  # P(called male | male), per animal, from its model card
        ("specificity", pa.float64()),  # P(called female | female)
        ("validation_males", pa.int64()),  # animals those rates were measured on
        ("validation_females", pa.int64()),
        ("note", pa.string()),  # why there is no correction, or that it was clipped
    ]
)

MATING_SUCCESS = pa.schema(
    [
        ("level", pa.string()),  # season | overall
        ("season", pa.int32()),  # year of started_at in the drop's time zone; null: encounter time unknown
        ("successes", pa.int64()),  # known_successes + the machine's success calls
        ("failures", pa.int64()),
        ("known_successes", pa.int64()),  # of successes, those a keeper's correction or encounters.csv gives
        ("known_failures", pa.int64()),
        ("unknown", pa.int64()),  # encounters left in the abstain band; not in n
        ("n", pa.int64()),  # successes + failures
        ("estimate", pa.float64()),  # successes / n
        ("ci_low", pa.float64()),  # Wilson 95%
        ("ci_high", pa.float64()),
        ("corrected", pa.float64()),  # known outcomes as counted, machine calls Rogan-Gladen corrected (clipped)
        ("corrected_ci_low", pa.float64()),  # 95%, carrying the uncertainty of the card's Se and Sp
        ("corrected_ci_high", pa.float64()),
        ("interval_method", pa.string()),  # as in gender_ratio
        ("validation_variance_share", pa.float64()),  # share of the interval's variance due to Se and Sp estimates
        ("width_4x_validation", pa.float64()),  # corrected interval width with 4x the validation encounters
        ("width_4x_counted", pa.float64()),  # corrected interval width with 4x the encounters counted
        ("wide_because", pa.string()),  # one sentence: record more outcomes for training, or observe more
        ("model_version", pa.string()),  # CGANet of the counted encounters (name@vN)
        ("sensitivity", pa.float64()),  # P(called success | success), per encounter, from the CGANet card
        ("specificity", pa.float64()),  # P(called failure | failure)
        ("validation_successes", pa.int64()),  # decided validation encounters those rates were measured on
        ("validation_failures", pa.int64()),
        ("note", pa.string()),  # why there is no correction, or that it was clipped
    ]
)

MODEL_CARDS = pa.schema(
    [
        ("kind", pa.string()),  # gender | mating | detector
        ("name", pa.string()),
        ("version", pa.int32()),
        ("model_version", pa.string()),  # name@vN, as prediction rows record it
        ("sensitivity", pa.float64()),  # gender: per-animal test rates (male positive); mating: per-encounter (success)
        ("specificity", pa.float64()),
        ("n_positive", pa.int64()),
        ("n_negative", pa.int64()),
        ("card_path", pa.string()),
        ("card", pa.string()),  # the whole model card as JSON text
        ("problem", pa.string()),  # why the card or its metrics could not be read
    ]
)

# Machine accuracy on the review queue's random audit slice (unbiased, unlike the ranked items): per month and model,
# the share of audited items where the keeper kept the machine's call.
AUDIT_ACCURACY = pa.schema(
    [
        ("month", pa.string()),  # YYYY-MM of the review (UTC)
        ("model", pa.string()),  # gender (face and animal sex) | mating (encounter outcome) | detector (is a face)
        ("n", pa.int64()),  # audited items the machine made a call on
        ("correct", pa.int64()),  # of those, the keeper kept the machine's call
        ("accuracy", pa.float64()),  # correct / n
        ("ci_low", pa.float64()),  # Wilson 95%
        ("ci_high", pa.float64()),
        ("abstained", pa.int64()),  # audited items the machine left unknown (not in n)
        ("model_versions", pa.string()),  # the versions whose calls were audited (name@vN, comma-separated)
    ]
)
