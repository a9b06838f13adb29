"""Where everything lives under a breedwatch home folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CATALOG_FILE = "breedwatch.duckdb"
VERSION_FILE = "home.json"
# The layout of folders and files under a home (1: the layout of the README's "Home folder and catalog"); a new
# version of this code that moves things bumps it and migrates older homes when it first writes them.
HOME_LAYOUT_VERSION = 1


@dataclass(frozen=True)
class HomeLayout:
    """The folders and files of one breedwatch home."""

    root: Path

    @property
    def lake(self) -> Path:
        """Parquet tables, one folder per table."""
        return self.root / "lake"

    @property
    def catalog(self) -> Path:
        """The DuckDB catalog file with views over the lake."""
        return self.root / CATALOG_FILE

    @property
    def models(self) -> Path:
        """Checkpoints and model cards."""
        return self.root / "models"

    @property
    def reports(self) -> Path:
        """One folder of report files per run."""
        return self.root / "reports"

    @property
    def runs(self) -> Path:
        """One folder per run with its resolved config."""
        return self.root / "runs"

    @property
    def state(self) -> Path:
        """Commit markers of finished stages, one folder per drop."""
        return self.lake / "_state"

    @property
    def damaged(self) -> Path:
        """Lake files found damaged, set aside out of every view's reach (breedwatch check --repair)."""
        return self.lake / "_damaged"

    @property
    def hardware(self) -> Path:
        """What this home measured about the machines it ran on (a cache: measured again when missing)."""
        return self.root / "hardware"

    @property
    def version_file(self) -> Path:
        """The home's layout version and each lake table's schema version, written by the code that last wrote it."""
        return self.root / VERSION_FILE

    @property
    def lock(self) -> Path:
        """The lock file held by the one process that writes this home."""
        return self.root / ".writer.lock"

    @property
    def execution_cache(self) -> Path:
        """How each net runs on each machine this home has met, keyed by the machine (tasks.execution)."""
        return self.hardware / "execution.json"

    def table_dir(self, table: str) -> Path:
        """The folder holding all parts of one lake table."""
        return self.lake / table

    def part(self, table: str, partition: str, key: str, part_name: str) -> Path:
        """The path of one Parquet part: lake/<table>/<partition>=<key>/part-<name>.parquet."""
        return self.table_dir(table) / f"{partition}={key}" / f"part-{part_name}.parquet"

    def stage_marker(self, drop_id: str, stage: str) -> Path:
        """The commit marker written last when a stage has finished a drop."""
        return self.state / f"drop={drop_id}" / f"{stage}.json"

    def crop(self, drop_id: str, face_id: str) -> Path:
        """Where one face crop JPEG is stored."""
        return self.lake / "crops" / f"drop={drop_id}" / f"{face_id}.jpg"

    def model_dir(self, kind: str, name: str) -> Path:
        """Folder of one model's versions: models/<kind>/<name>/v<N>/ (kind: detector, gender or mating)."""
        return self.models / kind / name

    def detector_dir(self, name: str) -> Path:
        """The model-store folder holding every version of a trained detector."""
        return self.models / "detector" / name

    def report_dir(self, run_id: str) -> Path:
        """Where one run's report is written."""
        return self.reports / run_id

    def run_dir(self, run_id: str) -> Path:
        """Where one run's resolved config is saved."""
        return self.runs / run_id
