/*
 * format.js - how the dashboard writes a number. The one definition: the
 * page loads it as /assets/format.js and the browser test requires it, so
 * the test compares the page's text with the API's figures formatted by the
 * same rules.
 *
 *   money   fen as yuan with 2 decimals and thousands separators: ¥1,234.50
 *           (a quotient such as a CAC of 333.333... fen rounds to ¥3.33)
 *   percent a ratio (0.125) as a percent with one decimal: 12.5%
 *   count   an integer with thousands separators: 12,345
 *   factor  a plain multiplier (K-factor) with 2 decimals: 1.50
 *   days    whole days: 14
 * null (a ratio with a zero denominator, a CAC without customers, a payback
 * never reached) is written as NONE.
 */
(function (root, factory) {
	const fmt = factory();
	if (typeof module === "object" && module.exports) {
		module.exports = fmt;
	} else {
		root.PondFormat = fmt;
	}
})(typeof self !== "undefined" ? self : this, function () {
	"use strict";

	const NONE = "—";
	const fixed2 = new Intl.NumberFormat("en-US", {
		minimumFractionDigits: 2,
		maximumFractionDigits: 2,
	});
	const fixed1 = new Intl.NumberFormat("en-US", {
		minimumFractionDigits: 1,
		maximumFractionDigits: 1,
	});
	const whole = new Intl.NumberFormat("en-US", {
		maximumFractionDigits: 0,
	});

	function isNumber(v) {
		return typeof v === "number" && Number.isFinite(v);
	}

	/* Rounds fen to a whole fen first (half away from zero), so the
	 * yuan have exactly two decimals before Intl sees them. */
	function money(fen) {
		if (!isNumber(fen)) {
			return NONE;
		}
		const cents = Math.sign(fen) * Math.round(Math.abs(fen));
		const text = "¥" + fixed2.format(Math.abs(cents) / 100);
		return cents < 0 ? "-" + text : text;
	}

	function percent(ratio) {
		return isNumber(ratio) ? fixed1.format(ratio * 100) + "%" : NONE;
	}

	function count(n) {
		return isNumber(n) ? whole.format(n) : NONE;
	}

	function factor(x) {
		return isNumber(x) ? x.toFixed(2) : NONE;
	}

	function days(n) {
		return isNumber(n) ? String(n) : NONE;
	}

	/* kindOfMetric tells how a goal's metric ("acquisition.full_cac_fen",
	 * "repurchase.repurchase_rate", "ltv.ltv_fen.30",
	 * "retention.retained.0") is written, by its last name that is not a
	 * number: money for *_fen, percent for rates, shares, retention, ROI
	 * and lift, else a count. */
	function kindOfMetric(metric) {
		const name = String(metric || "").split(".")
			.filter((part) => !/^\d+$/.test(part)).pop() || "";
		if (/_fen$/.test(name)) {
			return "money";
		}
		if (/(rate|share|retained|roi|lift)/.test(name)) {
			return "percent";
		}
		if (name === "k_factor") {
			return "factor";
		}
		return "count";
	}

	function metric(name, value) {
		return api[kindOfMetric(name)](value);
	}

	const api = {
		NONE,
		money,
		percent,
		count,
		factor,
		days,
		kindOfMetric,
		metric,
	};
	return api;
});
