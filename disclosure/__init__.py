"""Statistical disclosure control for hierarchical count tables.

Primary suppression (threshold rule), secondary suppression, an LP attacker audit and rounding.
Never imports the publishing pipeline: it is a self-contained engine. See README.md.
"""

from disclosure.attacker import conflicts, interval_intervals
from disclosure.audit import AuditFailure, AuditReport, audit
from disclosure.errors import AuditFailed, DisclosureError, TooLarge
from disclosure.hierarchy import Hierarchy
from disclosure.joint import METHOD_JOINT, JointResult, audit_jointly, protect_jointly
from disclosure.linked import KeyedRelations, LinkedTable, audit_linked_intruders, protect_linked
from disclosure.perturbation import (
    KEY_MODULUS,
    PTable,
    cell_keys,
    perturb,
    perturb_table,
    record_keys,
    record_keys_from_ids,
)
from disclosure.primary import (
    apply_overrides,
    magnitude_primary,
    primary_mask,
    sensitive_magnitude,
    top_contributions,
)
from disclosure.protect import ProtectionResult, protect
from disclosure.rounding import controlled_rounding_interval, round_controlled, round_conventional, rounding_interval
from disclosure.rules import Rules
from disclosure.table import Grid, add_totals

__all__ = [
    "KEY_MODULUS",
    "METHOD_JOINT",
    "AuditFailed",
    "AuditFailure",
    "AuditReport",
    "DisclosureError",
    "Grid",
    "Hierarchy",
    "JointResult",
    "KeyedRelations",
    "LinkedTable",
    "PTable",
    "ProtectionResult",
    "Rules",
    "TooLarge",
    "add_totals",
    "apply_overrides",
    "audit",
    "audit_jointly",
    "audit_linked_intruders",
    "cell_keys",
    "conflicts",
    "controlled_rounding_interval",
    "interval_intervals",
    "magnitude_primary",
    "perturb",
    "perturb_table",
    "primary_mask",
    "protect",
    "protect_jointly",
    "protect_linked",
    "record_keys",
    "record_keys_from_ids",
    "round_controlled",
    "round_conventional",
    "rounding_interval",
    "sensitive_magnitude",
    "top_contributions",
]
