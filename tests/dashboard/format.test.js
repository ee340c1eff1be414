/*
 * format.test.js - the dashboard's number formats (format.js), on values
 * worked out by hand. The browser test trusts format.js to say what the
 * page should show; this checks format.js itself.
 */
"use strict";

const { test } = require("node:test");
const assert = require("node:assert/strict");
const path = require("path");

const fmt = require(path.resolve(__dirname,
	"../../services/reporting/dashboard/format.js"));

test("money: fen as yuan with 2 decimals", () => {
	assert.equal(fmt.money(0), "¥0.00");
	assert.equal(fmt.money(5), "¥0.05");
	assert.equal(fmt.money(12900), "¥129.00");
	assert.equal(fmt.money(123456789), "¥1,234,567.89");
	/* CAC 20000 fen / 7 customers = 2857.142... fen -> ¥28.57. */
	assert.equal(fmt.money(20000 / 7), "¥28.57");
	/* 105000 / 72 = 1458.333... fen -> ¥14.58. */
	assert.equal(fmt.money(105000 / 72), "¥14.58");
	/* Half a fen rounds away from zero, either sign. */
	assert.equal(fmt.money(100.5), "¥1.01");
	assert.equal(fmt.money(-100.5), "-¥1.01");
	assert.equal(fmt.money(-2000), "-¥20.00");
	assert.equal(fmt.money(null), fmt.NONE);
	assert.equal(fmt.money(undefined), fmt.NONE);
	assert.equal(fmt.money("12900"), fmt.NONE);
});

test("percent: a ratio with one decimal", () => {
	assert.equal(fmt.percent(0), "0.0%");
	assert.equal(fmt.percent(1), "100.0%");
	/* 11 / 40 = 0.275 */
	assert.equal(fmt.percent(11 / 40), "27.5%");
	/* 1 / 3 = 33.33...% */
	assert.equal(fmt.percent(1 / 3), "33.3%");
	/* ROI (168000 - 8000) / 8000 = 20 */
	assert.equal(fmt.percent(20), "2,000.0%");
	assert.equal(fmt.percent(-0.118), "-11.8%");
	assert.equal(fmt.percent(null), fmt.NONE);
});

test("count, factor and days", () => {
	assert.equal(fmt.count(0), "0");
	assert.equal(fmt.count(12345), "12,345");
	assert.equal(fmt.count(null), fmt.NONE);
	/* K-factor 5 invitees / 9 inviters = 0.555... */
	assert.equal(fmt.factor(5 / 9), "0.56");
	assert.equal(fmt.factor(null), fmt.NONE);
	assert.equal(fmt.days(12), "12");
	assert.equal(fmt.days(null), fmt.NONE);
});

test("a goal's metric picks its format by name", () => {
	assert.equal(fmt.metric("acquisition.full_cac_fen", 600), "¥6.00");
	assert.equal(fmt.metric("repurchase.repurchase_rate", 0.275), "27.5%");
	assert.equal(fmt.metric("funnel.rate_from_first", 0.0417), "4.2%");
	assert.equal(fmt.metric("portrait.share", 0.5), "50.0%");
	assert.equal(fmt.metric("campaigns.roi", 1.8), "180.0%");
	assert.equal(fmt.metric("fission.k_factor", 1.5), "1.50");
	assert.equal(fmt.metric("acquisition.new_customers", 1200), "1,200");
	assert.equal(fmt.metric("payback.payback_days", null), fmt.NONE);
	/* A dotted tail into a row: the figure's name, not the day count. */
	assert.equal(fmt.metric("ltv.ltv_fen.30", 28481.3), "¥284.81");
	assert.equal(fmt.metric("retention.retained.0", 0.5), "50.0%");
});
