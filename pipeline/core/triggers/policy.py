"""The contact policy every trigger goes through: frequency caps per customer and type (event time), consent."""
from __future__ import annotations

from pipeline.core.profile import DAY_MS, CustomerState
from pipeline.core.rules import Rules


class Policy:
    def __init__(self, rules: Rules) -> None:
        self.cap = rules.trigger_cap_per_day
        self.suppress_without_consent = rules.consent_mode == "suppress"

    def admit(self, st: CustomerState, kind: str, ts: int) -> str | None:
        """None when the trigger may go out (and it is counted), else why it is held back."""
        if st.suppressed:
            return "privacy_suppressed"
        recent = [t for t in st.fired.get(kind, []) if ts - DAY_MS < t <= ts]
        if len(recent) >= self.cap:
            return "capped"
        if self.suppress_without_consent and not st.contactable:
            return "no_consent"
        st.fired[kind] = recent + [ts]
        return None
