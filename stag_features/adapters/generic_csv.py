"""Generic annotation table -> SampleRecords, for datasets without an adapter of their own.

For 4DME, NaME or a lab's own recordings: a CSV (or an .xlsx sheet) with a
header row holding these columns (names case-insensitive; spaces and
underscores ignored):

============  ========  =========================================================
column        required  meaning
============  ========  =========================================================
subject       yes       subject id; also the folder name under the raw root
clip          yes       clip id, unique within a subject; also the folder / video stem
onset         yes       onset frame number (cells must not be empty)
apex          yes       apex frame number (cells may be empty)
offset        yes       offset frame number (cells may be empty)
emotion       yes       raw emotion label (kept lower-cased)
aus           yes       AU codes, grammar of stag_features.adapters.au_codes (cells may be empty)
source        no        frames of the clip, relative to the raw root: a folder of
                        numbered images or a video file; default: discovered
                        (``root/<subject>/<clip>/`` or ``root/<subject>/<clip>.mp4`` ...)
fps           no        the clip's frame rate; default: the catalog entry's fps
============  ========  =========================================================

Frame numbers in a video are 0-based decoding positions unless the catalog
options say ``video_frame_base: 1`` or ``time_unit: ms`` (onset/apex/offset in
milliseconds). Class labels: the entry's ``default_scheme`` and any schemes in
``options.schemes``.
"""
from __future__ import annotations

from schemas.catalog import DatasetEntry
from stag_features.adapters.base import AdapterResult
from stag_features.adapters.sheet_layout import SheetLayout, load_sheet

# Column names are the record's field names; the table documented above is the contract.
FIELDS = ("subject", "clip", "onset", "apex", "offset", "emotion", "aus", "source", "fps")
OPTIONAL_FIELDS = ("source", "fps")

# No dataset frame rate (a row's fps, else the catalog entry's) and no scheme_dataset
# (labels use each scheme's common mapping): the table's dataset is not known here.
LAYOUT = SheetLayout(
    columns={name: (name,) for name in FIELDS},
    required=tuple(name for name in FIELDS if name not in OPTIONAL_FIELDS),
    header_markers=("subject", "clip"),
    variant="generic",
)


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of a generic annotation table (columns in the module docstring)."""
    return load_sheet(entry, LAYOUT)
