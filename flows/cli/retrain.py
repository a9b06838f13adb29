"""`breedwatch retrain gender|mating|detector|identity`: a new version trained with the keepers' corrections, promoted
only when it is not worse than the version in use on the same held-out data."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from flows.cli.common import ConfigOption, HomeOption, call_flow, config_arg, out, settings_or_exit

RetrainKind = Literal["gender", "mating", "detector", "identity"]


def value(number: float | None) -> str:
    """A headline value with three decimals, or 'not measured'."""
    return "not measured" if number is None else f"{number:.3f}"


def comparison_line(card: dict[str, Any]) -> str:
    """The comparison a retrain stored in its card, as one line."""
    promotion = card["promotion"]
    verdict = "promoted: 'name' now loads it" if promotion["promoted"] else "kept as a candidate: 'name' still loads"
    return (
        f"{promotion['meaning']} ({', '.join(promotion['held_out'])}): new {value(promotion['new_value'])}, "
        f"{promotion['current']} {value(promotion['current_value'])}; {verdict}"
        + ("" if promotion["promoted"] else f" {promotion['current']}")
    )


def retrain(
    kind: Annotated[RetrainKind, typer.Argument(help="Which model: gender, mating, detector or identity.")],
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Train a new version with the keepers' corrections as labels, measure it and the version in use on the latter's
    held-out data, and promote it only when it is not worse (else it stays a candidate, loadable as name@vN)."""
    from flows.train import retrain_flow

    settings = settings_or_exit(home, config)
    card = call_flow(retrain_flow, kind=kind, home=str(settings.home), config_file=config_arg(config))
    used = ", ".join(f"{count} {what.replace('_', ' ')}" for what, count in card.get("corrections_used", {}).items())
    out.print(f"stored {card['name']}@v{card['version']} in {card['path']}; corrections used: {used}", highlight=False)
    out.print(comparison_line(card), highlight=False)
