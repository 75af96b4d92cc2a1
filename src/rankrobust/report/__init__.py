"""Reports built from a results database: claims with statistics, figures, HTML and Markdown."""

from rankrobust.report.build import build_report

__all__ = ["build_report"]
