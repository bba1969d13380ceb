"""The chart /stats sends with its figures: tickets opened per week by category (stacked bars)
and how long tickets took to be resolved (a histogram). A pure function, figures and labels
(already translated) in, PNG bytes out, drawn with matplotlib's Agg canvas directly: no
pyplot, no backend chosen for the process, and rc settings only inside the drawing.

The staff read Chinese, which needs a CJK font; `chart_font` is the one place that finds it
(a system font first, then the packaged one, or none: then the caller draws English labels).
A glyph the font lacks would be drawn as a box: `draw_chart` raises `MissingGlyphs` instead.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import threading
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from db.stats import TicketFigures

log = logging.getLogger(__name__)

# Chinese fonts, best first: Debian's packages (README, "Figures") and what ships with the
# project (the noto-cjk-sans-otc wheel: Noto Sans CJK, SIL Open Font License).
SYSTEM_FAMILIES = (
    "Noto Sans CJK SC",  # fonts-noto-cjk
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",  # fonts-wqy-microhei
    "WenQuanYi Zen Hei",  # fonts-wqy-zenhei
)
SYSTEM_FILES = re.compile(r"(?i)(noto\w*cjk|sourcehan|wqy)")
PACKAGED_FONT = ("noto_cjk_sans_otc", "NotoSansCJK-Regular.ttc", "Noto Sans CJK SC")
COVERAGE_SAMPLE = "工单统计每周解决时间小时天数量"
LATIN_FALLBACK = "DejaVu Sans"  # matplotlib's own font
MISSING_GLYPH = re.compile(r"Glyph (\d+) .*missing from font")
_drawing = threading.Lock()  # matplotlib is not thread-safe; charts are drawn in a thread


class MissingGlyphs(Exception):
    """The font lacks characters of the labels: they would be drawn as boxes."""

    def __init__(self, characters: list[str]) -> None:
        super().__init__(f"missing from the chart's font: {' '.join(characters)}")
        self.characters = characters


@dataclass(frozen=True, slots=True)
class ChartFont:
    family: str
    source: str  # "system" or "packaged"


@dataclass(frozen=True, slots=True)
class ChartLabels:
    """Every word on the chart, in the language it is drawn in."""

    weekly_title: str
    week_axis: str
    tickets_axis: str
    resolution_title: str
    hours_axis: str
    days_axis: str
    nothing_resolved: str
    categories: dict[str, str]  # category key (db.stats.NONE too) -> label


@functools.cache
def chart_font() -> ChartFont | None:
    """The font for Chinese labels: a system one (fonts-noto-cjk, fonts-wqy-microhei,
    fonts-wqy-zenhei, ...) if there is one, else the one the project installs; None, with a
    warning logged, when neither covers Chinese (the chart is then drawn in English).
    Looked up once per process; fonts found are added to matplotlib's font list."""
    from matplotlib import font_manager

    with _drawing:
        manager = font_manager.fontManager
        listed = {str(entry.fname) for entry in manager.ttflist}
        # matplotlib caches the font list it found first: fonts installed since are added
        for path in font_manager.findSystemFonts():
            if SYSTEM_FILES.search(Path(path).name) and path not in listed:
                _add_font(manager, path)
        for family in SYSTEM_FAMILIES:
            if _covers_chinese(font_manager, family):
                return ChartFont(family, "system")
        package, filename, family = PACKAGED_FONT
        try:
            from importlib.resources import files

            path = str(files(package).joinpath(filename))
        except ModuleNotFoundError:
            path = None
        if path and Path(path).is_file():
            if path not in listed:
                _add_font(manager, path)
            if _covers_chinese(font_manager, family):
                return ChartFont(family, "packaged")
    log.warning(
        "no Chinese font for the /stats chart (install fonts-noto-cjk, or the project's"
        " dependencies again): it is drawn with English labels"
    )
    return None


def _add_font(manager, path: str) -> None:
    try:
        manager.addfont(path)
    except (OSError, RuntimeError, ValueError) as error:  # a broken file: skip it
        log.warning("font %s could not be read: %s", path, error)


def _covers_chinese(font_manager, family: str) -> bool:
    try:
        path = font_manager.findfont(
            font_manager.FontProperties(family=family), fallback_to_default=False
        )
        font = font_manager.get_font(path)
    except (ValueError, OSError, RuntimeError):
        return False
    return all(font.get_char_index(ord(char)) for char in COVERAGE_SAMPLE)


def draw_chart(figures: TicketFigures, labels: ChartLabels, *, font: str | None) -> bytes:
    """The PNG (1000 x 900 pixels). `font` is the family for the labels (None:
    matplotlib's own, fine for English). Raises MissingGlyphs when a label has a character
    the font cannot draw."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    families = [font, LATIN_FALLBACK] if font else [LATIN_FALLBACK]
    settings = {"font.family": "sans-serif", "font.sans-serif": families, "font.size": 10}
    with _drawing, rc_context(settings), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = Figure(figsize=(10, 9), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        weekly, resolution = figure.subplots(2, 1, height_ratios=[3, 2])
        _weekly(weekly, figures, labels)
        _resolution(resolution, figures.resolution_times, labels)
        out = io.BytesIO()
        figure.savefig(out, format="png")
    missing = sorted(
        {
            chr(int(match.group(1)))
            for warning in caught
            if (match := MISSING_GLYPH.search(str(warning.message)))
        }
    )
    if missing:
        raise MissingGlyphs(missing)
    return out.getvalue()


def _weekly(axes, figures: TicketFigures, labels: ChartLabels) -> None:
    weeks = figures.weeks
    positions = range(len(weeks))
    order = [key for key in labels.categories if any(w.by_category.get(key) for w in weeks)]
    order += sorted(
        {key for w in weeks for key in w.by_category} - set(order)
    )  # keys the labels do not know (a centre's old categories) still count
    bottom = [0] * len(weeks)
    colours = _colours(len(order))
    for key, colour in zip(order, colours, strict=True):
        heights = [w.by_category.get(key, 0) for w in weeks]
        axes.bar(
            positions,
            heights,
            bottom=bottom,
            label=labels.categories.get(key, key),
            color=colour,
            width=0.8,
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_title(labels.weekly_title)
    axes.set_xlabel(labels.week_axis)
    axes.set_ylabel(labels.tickets_axis)
    step = max(1, len(weeks) // 12)  # at most a dozen dates under the bars
    axes.set_xticks(list(positions)[::step])
    axes.set_xticklabels([w.start.strftime("%m-%d") for w in weeks][::step])
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.margins(y=0.08)
    if order:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)


def _resolution(axes, times: list[timedelta], labels: ChartLabels) -> None:
    axes.set_title(labels.resolution_title)
    axes.set_ylabel(labels.tickets_axis)
    if not times:
        axes.set_xticks([])
        axes.set_yticks([])
        axes.text(0.5, 0.5, labels.nothing_resolved, ha="center", va="center")
        return
    hours = [t.total_seconds() / 3600 for t in times]
    in_days = max(hours) > 72
    values = [h / 24 for h in hours] if in_days else hours
    axes.hist(values, bins=min(20, max(5, len(values))), color="#4c72b0", edgecolor="white")
    axes.set_xlabel(labels.days_axis if in_days else labels.hours_axis)
    axes.set_xlim(left=0)
    axes.yaxis.get_major_locator().set_params(integer=True)


def _colours(count: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(n % palette.N) for n in range(count)]
