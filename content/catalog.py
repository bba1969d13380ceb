"""Loads content/: per-language message catalogues, the lists a city edits, and templates.

Messages are Jinja2 templates with autoescape on, so whatever a person typed and is shown
back is escaped for Telegram's HTML; the markup the catalogue itself writes (<b>) stays.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, meta
from markupsafe import Markup

from content import jobs as jobs_content
from content import legal_aid
from content.crisis import CrisisWords
from content.guide import check as check_guide
from content.office_hours import OfficeHours

PACKAGED = Path(__file__).parent


class ContentError(Exception):
    """The content folder is incomplete or a text does not render."""


@dataclass(frozen=True)
class Category:
    key: str
    about_wages: bool


class Translator:
    """The texts of one language, bound to the catalogue."""

    def __init__(self, catalog: Catalog, language: str) -> None:
        self.catalog = catalog
        self.language = language
        self._messages = catalog._compiled[language]
        self._fixed: dict[str, Markup] = {}  # texts without variables, rendered once

    def __call__(self, key: str, /, **variables: Any) -> Markup:
        if not variables and key in self._fixed:
            return self._fixed[key]
        try:
            template = self._messages[key]
        except KeyError:
            raise ContentError(f"no text {key!r} in language {self.language!r}") from None
        text = Markup(template.render(variables))
        if not variables and key not in self.catalog._variable_keys[self.language]:
            self._fixed[key] = text
        return text

    def render(self, template_name: str, /, **variables: Any) -> Markup:
        template = self.catalog.environment.get_template(template_name)
        return Markup(template.render(variables, t=self, lang=self.language))


class Catalog:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder or PACKAGED)
        settings = _read_yaml(self.folder / "hotline.yaml")
        self.languages: list[str] = list(settings["languages"])
        self.default_language: str = self.languages[0]
        self.ticket_prefix: str = str(settings["ticket_prefix"])
        self.limits: dict[str, int] = dict(settings["limits"])
        # Open tickets of all kinds one person may have (complaints and one conversation).
        self.open_tickets_per_person: int = int(self.limits.get("open_tickets_per_person", 5))
        self.staff_language: str = str(settings.get("staff_language", self.default_language))
        self.reopen_days: int = int(settings.get("reopen_days", 14))
        try:
            self.office_hours = OfficeHours.from_file(self.folder / "office_hours.yaml")
            self.crisis_words = CrisisWords.from_file(self.folder / "crisis.yaml")
        except (ValueError, OSError) as error:
            raise ContentError(str(error)) from None
        complaint = _read_yaml(self.folder / "complaint.yaml")
        self.categories = [
            Category(item["key"], bool(item.get("about_wages", False)))
            for item in complaint["categories"]
        ]
        self.districts: list[str] = list(_read_yaml(self.folder / "districts.yaml")["districts"])
        self.environment = Environment(
            loader=FileSystemLoader(self.folder / "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._sources: dict[str, dict[str, str]] = {}
        self._compiled: dict[str, dict[str, Template]] = {}
        for language in self.languages:
            flat = _read_locale(self.folder / "locales", language)
            self._sources[language] = flat
            self._compiled[language] = {
                key: self.environment.from_string(text) for key, text in flat.items()
            }
        self._variable_keys = {
            language: {
                key for key, text in self._sources[language].items() if self._variables(text)
            }
            for language in self.languages
        }
        self._translators = {lang: Translator(self, lang) for lang in self.languages}

    def translator(self, language: str | None) -> Translator:
        return self._translators.get(language or "", self._translators[self.default_language])

    def language_for_hint(self, hint: str | None) -> str:
        """Telegram's language_code (zh-hans, en-US) is only a hint for the first question."""
        if hint:
            prefix = hint.lower().split("-")[0]
            if prefix in self._translators:
                return prefix
        return self.default_language

    def category(self, key: str) -> Category | None:
        return next((c for c in self.categories if c.key == key), None)

    def keys(self, language: str) -> frozenset[str]:
        """The text keys a language has (services' checks ask which of theirs are missing)."""
        return frozenset(self._sources[language])

    def labels_in_every_language(self, key: str) -> list[str]:
        """A choice's label in each language, so a bilingual worker may type either."""
        return [str(self._translators[lang](key)) for lang in self.languages]

    def check(self) -> list[str]:
        """Every problem a coordinator should fix before the hotline starts; empty when fine."""
        problems: list[str] = []
        if self.open_tickets_per_person < 1:
            problems.append("hotline.yaml: limits.open_tickets_per_person must be at least 1")
        reference = self.languages[0]
        for language in self.languages:
            missing = self._sources[reference].keys() - self._sources[language].keys()
            extra = self._sources[language].keys() - self._sources[reference].keys()
            problems += [f"{language}: missing text {key!r}" for key in sorted(missing)]
            problems += [f"{language}: text {key!r} is not in {reference}" for key in sorted(extra)]
            for key in sorted(self._sources[language].keys() & self._sources[reference].keys()):
                mine = self._variables(self._sources[language][key])
                theirs = self._variables(self._sources[reference][key])
                if mine != theirs:
                    problems.append(
                        f"{language}: text {key!r} uses {sorted(mine)}"
                        f" but {reference} uses {sorted(theirs)}"
                    )
        for language in self.languages:
            labels = self._sources[language]
            for category in self.categories:
                if f"categories.{category.key}" not in labels:
                    problems.append(f"{language}: no label categories.{category.key}")
            for district in self.districts:
                if f"districts.{district}" not in labels:
                    problems.append(f"{language}: no label districts.{district}")
        samples = _read_yaml(self.folder / "samples.yaml")
        for name in self.environment.list_templates(extensions=["j2"]):
            if name not in samples:
                problems.append(f"template {name}: no sample in samples.yaml to render it with")
                continue
            for language in self.languages:
                try:
                    self.translator(language).render(name, **samples[name])
                except Exception as error:  # any failure is a finding, reported not raised
                    problems.append(f"template {name} in {language} does not render: {error}")
        for language in self.languages:
            for key, source in self._sources[language].items():
                try:
                    self._compiled[language][key].render(
                        {name: 1 for name in self._variables(source)}
                    )
                except Exception as error:
                    problems.append(f"{language}: text {key!r} does not render: {error}")
        problems += jobs_content.check(self)
        problems += legal_aid.check(self)  # the directory, which Refer offers too
        problems += check_guide(self)  # sections, tree, search settings, calculator rates
        return problems

    def _variables(self, source: str) -> set[str]:
        return meta.find_undeclared_variables(self.environment.parse(source))


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ContentError(f"{path} is missing") from None
    except yaml.YAMLError as error:
        raise ContentError(f"{path} is not valid YAML: {error}") from None


def _read_locale(folder: Path, language: str) -> dict[str, str]:
    """A language's texts: `locales/<language>.yaml`, then each service's own file in
    `locales/<language>/` (legal aid, jobs, the guide), so that a centre edits one service
    without reading the rest. A key written twice is a mistake, not an override."""
    flat = dict(_flatten(_read_yaml(folder / f"{language}.yaml")))
    for path in sorted((folder / language).glob("*.yaml")):
        for key, text in _flatten(_read_yaml(path) or {}):
            if key in flat:
                raise ContentError(f"{path}: text {key!r} is written twice")
            flat[key] = text
    return flat


def _flatten(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, name + ".")
        else:
            yield name, str(value)
