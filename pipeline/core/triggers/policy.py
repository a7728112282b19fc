"""The contact policy every trigger goes through: frequency caps per customer and type (event time), consent."""
from __future__ import annotations

from pipeline.core.profile import DAY_MS, CustomerState
from pipeline.core.rules import Rules


#: How long the event times of sent triggers are kept per customer: the cap needs a day, a privacy export
#: lists them for the trigger topics' retention.
KEEP_SENT_MS = 7 * DAY_MS


class Policy:
    def __init__(self, rules: Rules) -> None:
        self.cap = rules.trigger_cap_per_day
        self.suppress_without_consent = rules.consent_mode == "suppress"

    def admit(self, st: CustomerState, kind: str, ts: int) -> str | None:
        """None when the trigger may go out (and it is counted), else why it is held back."""
        if st.suppressed:
            return "privacy_suppressed"
        kept = [t for t in st.fired.get(kind, []) if ts - KEEP_SENT_MS < t <= ts]
        recent = [t for t in kept if ts - DAY_MS < t]
        if len(recent) >= self.cap:
            return "capped"
        if self.suppress_without_consent and not st.contactable:
            return "no_consent"
        st.fired[kind] = kept + [ts]
        return None
