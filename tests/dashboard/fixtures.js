/*
 * fixtures.js - the reporting API's answers for the mock server, in the
 * shapes of API.md sections 4 and 6, from a small hand-made business.
 *
 * Only the base figures are written down; every derived figure (CAC, LTV,
 * rates, shares, commission) is computed from them by its definition, so
 * the fixtures are consistent with each other the way the real service's
 * answers are. The browser test never reads this file: it asks the API
 * (here the mock) and compares the page with the answer.
 */
"use strict";

const div = (a, b) => (b === 0 ? null : a / b);

/* channel: new customers, spend, incentives paid to them, net revenue of
 * the cohort by day 7/30/60/90/180, payback days (from that curve and the
 * full CAC: insert_card's full CAC is ¥6.00 and its cohort earns ¥6.00 per
 * head on day 12). */
const CHANNELS = {
	// 1,000 cards at ¥0.05 brought 50 contacts: CAC ¥1.00; a ¥5 red
	// packet each makes the full CAC ¥6.00.
	insert_card: { new: 50, spend: 5000, incentive: 25000,
		revenue: [12000, 45000, 70000, 81000, 99000], payback: 12 },
	// 1,200 SMS at ¥0.30 brought 12.
	sms: { new: 12, spend: 36000, incentive: 6000,
		revenue: [9000, 30000, 52000, 60000, 71000], payback: 21 },
	// 700 AI calls at ¥0.2857 (¥200) brought 7 and never paid back.
	ai_call: { new: 7, spend: 20000, incentive: 0,
		revenue: [0, 2100, 4900, 7000, 9100], payback: null },
	// Friends invited by customers: no spend, a ¥10 gift each.
	referral: { new: 5, spend: 0, incentive: 5000,
		revenue: [8000, 21000, 30000, 36000, 36000], payback: 3 },
	// Spend but nobody yet: CAC null.
	douyin: { new: 0, spend: 10000, incentive: 0,
		revenue: [0, 0, 0, 0, 0], payback: null },
};
const LTV_DAYS = [7, 30, 60, 90, 180];

function acquisitionRow(channel, c) {
	return {
		channel,
		new_customers: c.new,
		spend_fen: c.spend,
		cac_fen: div(c.spend, c.new),
		incentive_fen: c.incentive,
		full_cac_fen: div(c.spend + c.incentive, c.new),
	};
}

function sumChannels(names) {
	const all = { new: 0, spend: 0, incentive: 0, revenue: [0, 0, 0, 0, 0] };
	names.forEach((n) => {
		const c = CHANNELS[n];
		all.new += c.new;
		all.spend += c.spend;
		all.incentive += c.incentive;
		c.revenue.forEach((r, i) => { all.revenue[i] += r; });
	});
	return all;
}

function channelsOf(q) {
	const only = q.get("channel");
	if (only) {
		return CHANNELS[only] ? [only] : [];
	}
	return Object.keys(CHANNELS);
}

function acquisition(q) {
	const names = channelsOf(q);
	const total = acquisitionRow(undefined, sumChannels(names));
	delete total.channel;
	return { rows: names.map((n) => acquisitionRow(n, CHANNELS[n])), total };
}

function ltvRow(channel, c, days) {
	const ltv = {};
	days.forEach((d) => {
		const i = LTV_DAYS.indexOf(d);
		ltv[String(d)] = c.new === 0 || i < 0 ? null :
			c.revenue[i] / c.new;
	});
	return { channel, cohort_size: c.new, ltv_fen: ltv };
}

function ltv(q) {
	const days = (q.get("days") || "30,60,90").split(",").map(Number);
	const names = channelsOf(q).filter((n) => CHANNELS[n].new > 0);
	const rows = names.map((n) => ltvRow(n, CHANNELS[n], days));
	rows.push(ltvRow("all", sumChannels(names), days));
	return { rows, total: {} };
}

function payback(q) {
	const margin = Number(q.get("margin") || 1);
	if (!(margin > 0 && margin <= 1)) {
		return null;
	}
	const names = channelsOf(q);
	const rows = names.map((n) => {
		const c = CHANNELS[n];
		return {
			channel: n,
			full_cac_fen: div(c.spend + c.incentive, c.new),
			/* A thinner margin takes longer (roughly: the
			 * curve is not linear, but the mock only needs the
			 * figure to depend on the margin the page sends). */
			payback_days: c.payback === null ? null :
				Math.ceil(c.payback / margin),
		};
	});
	const all = sumChannels(names);
	rows.push({ channel: "all",
		full_cac_fen: div(all.spend + all.incentive, all.new),
		payback_days: all.new ? Math.ceil(15 / margin) : null });
	return { rows, total: {} };
}

function repurchase() {
	return { rows: [], total: {
		buyers: 40, repeat_buyers: 11, repurchase_rate: div(11, 40),
		lifetime_buyers: 55, lifetime_repeat_buyers: 17,
		lifetime_repurchase_rate: div(17, 55),
	} };
}

const STAGES = { potential: 30, first_purchase: 25, repurchase: 9,
	loyal: 5, member: 3 };

function lifecycle() {
	return { rows: Object.entries(STAGES).map(([stage, customers]) =>
		({ stage, customers })) };
}

/* week: cohort size and customers active in weeks 0, 1, ...; the later
 * cohorts' last weeks are after as_of (null). */
const COHORTS = {
	"2026-10-05": [10, [10, 6, 5, 4, 4, 3, 3, 2]],
	"2026-10-12": [14, [14, 8, 6, 6, 5, 4]],
	"2026-10-19": [20, [20, 9, 7, 5]],
	"2026-10-26": [8, [8, 3]],
};

function retention(q) {
	const weeks = Number(q.get("weeks") || 8);
	return { rows: Object.entries(COHORTS).map(([week, [size, active]]) => ({
		week,
		cohort_size: size,
		retained: [...Array(weeks).keys()].map((k) =>
			(k < active.length ? active[k] / size : null)),
	})), total: {} };
}

function funnel() {
	const steps = [["added", 72], ["first_order", 40],
		["second_order", 11], ["member", 3]];
	return { rows: steps.map(([step, customers], i) => ({
		step,
		customers,
		rate_from_previous: i === 0 ? null :
			div(customers, steps[i - 1][1]),
		rate_from_first: div(customers, steps[0][1]),
	})), total: {} };
}

function campaign(id, name, c) {
	const cost = c.costPerTouch * c.sent + c.rewards;
	const treated = div(c.conversions, c.sent);
	const held = div(c.holdoutConversions, c.holdout);
	return {
		campaign_id: id,
		name,
		audience: c.sent + c.holdout + Object.values(c.suppressed)
			.reduce((a, b) => a + b, 0),
		sent: c.sent,
		delivered: c.delivered,
		failed: c.sent - c.delivered,
		suppressed: c.suppressed,
		conversions: c.conversions,
		revenue_fen: c.revenue,
		cost_fen: cost,
		roi: div(c.revenue - cost, cost),
		holdout_size: c.holdout,
		holdout_conversions: c.holdoutConversions,
		lift: treated === null || !held ? null : treated / held - 1,
	};
}

function campaigns() {
	return { rows: [
		campaign(1, "Repurchase reminder", { sent: 100, delivered: 95,
			costPerTouch: 10, rewards: 7000, conversions: 14,
			revenue: 168000, holdout: 20, holdoutConversions: 1,
			suppressed: { frequency_cap: 12, opt_out: 3, quota: 5 } }),
		campaign(2, "Invite 3 friends", { sent: 60, delivered: 58,
			costPerTouch: 10, rewards: 5400, conversions: 5,
			revenue: 30000, holdout: 0, holdoutConversions: 0,
			suppressed: {} }),
		campaign(3, "Double 11 coupon", { sent: 80, delivered: 80,
			costPerTouch: 5, rewards: 20000, conversions: 6,
			revenue: 18000, holdout: 10, holdoutConversions: 1,
			suppressed: { removed: 2 } }),
	], total: {} };
}

function fission() {
	const top = [{ customer_key: "c-017", invitees: 3 },
		{ customer_key: "c-023", invitees: 2 }];
	const added = top.reduce((a, t) => a + t.invitees, 0);
	return { rows: [], total: {
		invites_shared: 25,
		inviters: 9,
		invitees_added: added,
		successful_inviters: top.filter((t) => t.invitees >= 3).length,
		k_factor: div(added, 9),
		top_inviters: top,
	} };
}

/* POND_COMMISSION_TIERS' default: 0:0.03, 1000000:0.05, 5000000:0.08. */
const TIERS = [[0, 0.03], [1000000, 0.05], [5000000, 0.08]];

function guideRow(kind, id, added, revenue) {
	let tier = null;
	TIERS.forEach(([threshold], i) => {
		if (revenue >= threshold) {
			tier = i;
		}
	});
	const rate = tier === null ? null : TIERS[tier][1];
	const row = { kind };
	row[kind === "guide" ? "guide_id" : "store_id"] = id;
	return Object.assign(row, {
		customers_added: added,
		net_revenue_fen: revenue,
		commission_fen: revenue > 0 ? Math.round(rate * revenue) : 0,
		tier,
		rate,
	});
}

function guides() {
	return { rows: [
		guideRow("guide", "g-01", 21, 1250000),
		guideRow("guide", "g-02", 9, 480033),
		guideRow("guide", "g-03", 2, -2000),
		guideRow("guide", "g-04", 14, 5100000),
		guideRow("store", "s-01", 30, 1730033),
		guideRow("store", "s-02", 16, 5100000),
		guideRow("store", "s-03", 0, 0),
	], total: {} };
}

const PORTRAITS = {
	region: { "上海": 30, "浙江": 22, "广东": 12, null: 8 },
	industry: { retail: 20, education: 11, null: 41 },
	channel: Object.fromEntries(Object.entries(CHANNELS)
		.filter(([, c]) => c.new > 0).map(([n, c]) => [n, c.new])),
	lifecycle: STAGES,
	tag: { "lifecycle:potential": 30, vip: 6, coupon_hunter: 9,
		repurchase_due: 14 },
};
const POPULATION = 72;

function portrait(q) {
	const by = PORTRAITS[q.get("group_by") || "region"];
	if (!by) {
		return null;
	}
	return { rows: Object.entries(by).map(([value, customers]) => ({
		value: value === "null" ? null : value,
		customers,
		share: customers / POPULATION,
	})) };
}

function goal(id, metric, params, baseline, target, current, elapsed) {
	const progress = Math.min(1, Math.max(0,
		(current - baseline) / (target - baseline)));
	return { id, metric, params, baseline_from: "2026-07-01",
		baseline_to: "2026-10-01", baseline, target, target_value: target,
		deadline: "2026-12-31T16:00:00Z", current, progress,
		time_elapsed: elapsed, on_track: progress >= elapsed };
}

function goals() {
	return { goals: [
		goal("cheaper-cards", "acquisition.full_cac_fen",
			{ channel: "insert_card" }, 800, 500, 600, 0.5),
		goal("repurchase", "repurchase.repurchase_rate", {}, 0.2, 0.35,
			0.275, 0.6),
		goal("members", "funnel.rate_from_first", { step: "member" },
			0.02, 0.06, 0.0417, 0.5),
	] };
}

const CUSTOMERS = {
	"c-017": {
		customer_key: "c-017",
		lifecycle: "repurchase",
		profile: { channel: "insert_card", guide_id: "g-01",
			store_id: "s-01", region: "上海", industry: "retail",
			orders: 2, net_revenue_fen: 25800 },
		tags: ["lifecycle:repurchase", "vip", "repurchase_due"],
		events: [
			{ event_id: "e-3", occurred_at: "2026-10-20T02:00:00Z",
				order_paid: { order_id: "o-2", amount_fen: "12900" } },
			{ event_id: "e-2", occurred_at: "2026-10-09T11:30:00Z",
				order_paid: { order_id: "o-1", amount_fen: "12900" } },
			{ event_id: "e-1", occurred_at: "2026-10-06T08:00:00Z",
				contact_added: { channel: "insert_card",
					guide_id: "g-01" } },
		],
	},
};

const REPORTS = { acquisition, ltv, payback, repurchase, lifecycle,
	retention, funnel, campaigns, fission, guides, portrait };
const PERIOD_REPORTS = ["acquisition", "ltv", "payback", "repurchase",
	"retention", "funnel", "campaigns", "fission", "guides"];

/* reply answers a GET of path with query q (URLSearchParams):
 * {status, body}. */
function reply(path, q) {
	const report = path.match(/^\/v1\/reports\/([a-z]+)$/);
	if (report && REPORTS[report[1]]) {
		const name = report[1];
		if (PERIOD_REPORTS.includes(name) &&
			(!q.get("from") || !q.get("to"))) {
			return { status: 400, body: { error: { code: "bad_param",
				message: "from and to are required" } } };
		}
		const body = REPORTS[name](q);
		if (body === null) {
			return { status: 400, body: { error: { code: "bad_param",
				message: "a parameter is out of range" } } };
		}
		return { status: 200, body: Object.assign({
			report: name,
			from: q.get("from"),
			to: q.get("to"),
			as_of: q.get("as_of") || new Date().toISOString(),
		}, body) };
	}
	if (path === "/v1/goals") {
		return { status: 200, body: goals() };
	}
	const customer = path.match(/^\/v1\/customers\/(.+)$/);
	if (customer) {
		const c = CUSTOMERS[decodeURIComponent(customer[1])];
		return c ? { status: 200, body: c } :
			{ status: 404, body: { error: { code: "not_found",
				message: "no such customer" } } };
	}
	return { status: 404, body: { error: { code: "not_found",
		message: "no such path on this server" } } };
}

module.exports = { reply };
