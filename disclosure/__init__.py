"""Statistical disclosure control for hierarchical count tables.

Primary suppression (threshold rule), secondary suppression, an LP attacker audit and rounding.
Never imports the publishing pipeline: it is a self-contained engine. See README.md.
"""

from disclosure.audit import AuditFailure, AuditReport, audit
from disclosure.errors import AuditFailed, DisclosureError
from disclosure.hierarchy import Hierarchy
from disclosure.linked import LinkedTable, protect_linked
from disclosure.primary import primary_mask
from disclosure.protect import ProtectionResult, protect
from disclosure.rounding import round_conventional, rounding_interval
from disclosure.rules import Rules
from disclosure.table import Grid, add_totals

__all__ = [
    "AuditFailed",
    "AuditFailure",
    "AuditReport",
    "DisclosureError",
    "Grid",
    "Hierarchy",
    "LinkedTable",
    "ProtectionResult",
    "Rules",
    "add_totals",
    "audit",
    "primary_mask",
    "protect",
    "protect_linked",
    "round_conventional",
    "rounding_interval",
]
