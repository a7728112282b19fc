"""BG/NBD ("buy till you die", Fader, Hardie & Lee 2005): the classic churn baseline for ``rapport eval``.

Per customer: ``x`` repeat purchases, ``t_x`` time of the last purchase and ``T`` age, both since the
first purchase (days). Fitted by maximum likelihood; the churn score is minus the expected number of
purchases in the next ``horizon`` days.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1


class BGNBD:
    def __init__(self) -> None:
        self.r = self.alpha = self.a = self.b = 1.0

    def fit(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> "BGNBD":
        def nll(log_params: np.ndarray) -> float:
            r, alpha, a, b = np.exp(log_params)
            a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
            a2 = betaln(a, b + x) - betaln(a, b)
            a3 = -(r + x) * np.log(alpha + T)
            a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf)
            return -np.sum(a1 + a2 + np.logaddexp(a3, a4))

        result = minimize(nll, np.log([1.0, 10.0, 1.0, 1.0]), method="Nelder-Mead", options={"maxiter": 4000})
        self.r, self.alpha, self.a, self.b = np.exp(result.x)
        return self

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + T + t)
        # (a + b + x - 1) / (a - 1) and the bracket change sign together when a < 1 (common on real data)
        head = (a + b + x - 1) / (a - 1)
        body = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return head * body * self.p_alive(x, t_x, T)

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        alive_odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
        return 1 / (1 + alive_odds)

    def p_no_purchase(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(no purchase in the next ``t`` days): dead, or alive and silent (a Poisson-gamma zero)."""
        alive = self.p_alive(x, t_x, T)
        return 1 - alive + alive * ((self.alpha + T) / (self.alpha + T + t)) ** (self.r + x)
