"""``stag export``: a store's features in the formats other code reads.

    stag export flow-images STORE OUT --format megc2019 [--scheme NAME] [--overwrite]

writes one 28 x 28 three-channel PNG per committed sample, named and normalised
as the MEGC 2019 composite's flow images that HTNet and STSTNet read
(``<subject>_<clip> .png``; u, v, strain in R, G, B, each 0..255), and their
index CSV (``stag_features.export``; the convention is in docs/store.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _flow_images_command(args: argparse.Namespace) -> int:
    from stag_features.export import ExportError, export_flow_images

    try:
        summary = export_flow_images(args.store, args.out, args.format, scheme=args.scheme, overwrite=args.overwrite,
                                     progress=lambda m: print(m, flush=True))
    except (ExportError, FileNotFoundError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"stag export flow-images: error: {message}", file=sys.stderr)
        return 2
    print(summary.text())
    return 0


def register(subparsers) -> None:
    """Add ``export flow-images`` to the ``stag`` command."""
    parser = subparsers.add_parser("export", help="write a store's features in other tools' formats")
    commands = parser.add_subparsers(dest="export_command", required=True)
    images = commands.add_parser("flow-images", help="one flow image per sample in the MEGC 2019 convention "
                                 "(HTNet, STSTNet), with its index CSV")
    images.add_argument("store", type=Path, metavar="STORE", help="a stag feature store")
    images.add_argument("out", type=Path, metavar="OUT", help="folder to write the images and the index into")
    images.add_argument("--format", choices=["megc2019"], default="megc2019",
                        help="image convention (megc2019: 28 x 28, u, v, strain in R, G, B, 0..255)")
    images.add_argument("--scheme", help="class scheme whose labels the index lists (default: the store's only "
                        "scheme); samples it excludes are not exported")
    images.add_argument("--overwrite", action="store_true", help="write into an OUT that already holds files")
    images.set_defaults(handler=_flow_images_command)
