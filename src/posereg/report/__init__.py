"""Grid results -> the papers' tables (md/csv/tex/html) and plots, from run directories only."""

from posereg.report.build import Report, build_report, make_table
from posereg.report.collect import RunRecord, collect, load_run
from posereg.report.table import Table, build_table
from posereg.report.template import Template, load_template

__all__ = [
    "Report", "RunRecord", "Table", "Template", "build_report", "build_table", "collect", "load_run",
    "load_template", "make_table",
]
