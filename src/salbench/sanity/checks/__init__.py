"""Sanity checks as registry entries: importing this package registers every check (torch-free).

Each module declares one check, or one family of checks sharing a computation (the randomisation cascade);
see :mod:`.base` for the contract.
"""

from . import class_sensitivity, data_randomisation, input_invariance, input_sensitivity, random_logit  # noqa: F401
from . import randomisation  # noqa: F401  (registers the cascade family)
from . import emprt, smprt  # noqa: F401  (read the cascade family's cascade)
from .base import (CHECKS, MEASURE, SENSITIVITIES, Check, controls, describe_checks, get_check,  # noqa: F401
                   list_checks, register_check)
from .randomisation import ORDERS, cascade_orders, cascade_rows, fraction_stage  # noqa: F401

__all__ = ["CHECKS", "MEASURE", "ORDERS", "SENSITIVITIES", "Check", "cascade_orders", "cascade_rows", "controls", "describe_checks",
           "fraction_stage", "get_check", "list_checks", "register_check"]

# installed packages' checks (entry-point group ``salbench.checks``) run like the built-in ones: registered here,
# before the verdicts and the report read the registry (a broken one is left out with a warning)
CHECKS.load_installed_plugins()
