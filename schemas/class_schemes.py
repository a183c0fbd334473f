"""Class schemes: raw emotion labels to class indices, loaded from data.

The schemes themselves live in ``class_schemes.yaml`` beside this module (data,
not code); this module only types and checks them. A scheme maps a raw label
(case-insensitively, spaces trimmed) to one of its classes; labels outside the
mapping are not part of the scheme (``index`` returns None).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMES_FILE = Path(__file__).with_name("class_schemes.yaml")


def normalise_label(raw_label: object) -> str:
    """The key a raw label is looked up by: text, trimmed, lower case; 2.0 -> '2'."""
    if isinstance(raw_label, float) and raw_label.is_integer():
        raw_label = int(raw_label)
    return str(raw_label).strip().lower()


class ClassScheme(BaseModel):
    """An ordered list of classes and the raw labels that belong to each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    classes: list[str] = Field(min_length=2)
    mapping: dict[str, str] = Field(default_factory=dict, description="raw label -> class name")
    per_dataset: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="source dataset -> its own raw label -> class name mapping"
    )
    applies_to: list[str] = Field(default_factory=list, description="adapter kinds whose records get this scheme")
    description: str = ""

    @field_validator("mapping")
    @classmethod
    def _lower_keys(cls, mapping: dict[str, str]) -> dict[str, str]:
        return {normalise_label(k): v for k, v in mapping.items()}

    @field_validator("per_dataset")
    @classmethod
    def _lower_dataset_keys(cls, per_dataset: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        return {ds: {normalise_label(k): v for k, v in m.items()} for ds, m in per_dataset.items()}

    @model_validator(mode="after")
    def _targets_are_classes(self) -> "ClassScheme":
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"class scheme {self.name!r}: duplicate class names in {self.classes}")
        mappings = {"mapping": self.mapping, **{f"per_dataset.{k}": v for k, v in self.per_dataset.items()}}
        for where, mapping in mappings.items():
            unknown = sorted(set(mapping.values()) - set(self.classes))
            if unknown:
                raise ValueError(f"class scheme {self.name!r}, {where}: maps to {unknown}, not among classes {self.classes}")
        return self

    def class_name(self, raw_label: object, dataset: str | None = None) -> str | None:
        """The class a raw label belongs to, or None if the scheme leaves it out."""
        mapping = self.per_dataset.get(dataset, self.mapping) if dataset else self.mapping
        return mapping.get(normalise_label(raw_label))

    def index(self, raw_label: object, dataset: str | None = None) -> int | None:
        """Class index (position in ``classes``) of a raw label, or None if not in the scheme.

        ``dataset`` selects a per-dataset mapping where the scheme has one
        (MEGC 2019: CASME II fear is not negative, SAMM fear is).
        """
        name = self.class_name(raw_label, dataset)
        return None if name is None else self.classes.index(name)

    def applies(self, kind: str) -> bool:
        """Whether records of an adapter kind get labels under this scheme."""
        return kind in self.applies_to


def _parse_schemes(data: object, source: str) -> dict[str, ClassScheme]:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of scheme name -> scheme, got {type(data).__name__}")
    schemes: dict[str, ClassScheme] = {}
    for name, body in data.items():
        if not isinstance(body, dict):
            raise ValueError(f"{source}: scheme {name!r} must be a mapping, got {type(body).__name__}")
        if "name" in body and body["name"] != name:
            raise ValueError(f"{source}: scheme {name!r} says name {body['name']!r}")
        try:
            schemes[str(name)] = ClassScheme(name=str(name), **{k: v for k, v in body.items() if k != "name"})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'scheme'}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
            )
            raise ValueError(f"{source}: scheme {name!r}: {problems}") from exc
    return schemes


def load_schemes(path: Path | None = None) -> dict[str, ClassScheme]:
    """All class schemes by name, from ``path`` or the packaged class_schemes.yaml."""
    if path is None:
        return dict(_packaged_schemes())
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class scheme file {path} does not exist")
    return _parse_schemes(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


@lru_cache(maxsize=1)
def _packaged_schemes() -> dict[str, ClassScheme]:
    return _parse_schemes(yaml.safe_load(SCHEMES_FILE.read_text(encoding="utf-8")), str(SCHEMES_FILE))


def get_scheme(name: str) -> ClassScheme:
    """One packaged scheme by name; the error lists the known names."""
    schemes = _packaged_schemes()
    if name not in schemes:
        raise ValueError(f"unknown class scheme {name!r}; known: {', '.join(sorted(schemes))}")
    return schemes[name]


def schemes_for(kind: str) -> list[ClassScheme]:
    """The packaged schemes that apply to records of an adapter kind."""
    return [s for s in _packaged_schemes().values() if s.applies(kind)]
