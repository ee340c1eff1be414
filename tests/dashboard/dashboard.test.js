/*
 * dashboard.test.js - drives the dashboard in headless Chromium and checks
 * that every panel shows the numbers the reporting API returns.
 *
 *   node tests/dashboard/dashboard.test.js        (make test-dashboard)
 *
 * Against any server: POND_DASHBOARD_URL (e.g. http://127.0.0.1:8403) and
 * POND_DASHBOARD_TOKEN (a read token). Without a URL it starts the mock API
 * (mock.js), with the page served by POND_DASHBOARD_SERVER (the program
 * pond-dashboard-serve: the files embedded in C) or, failing that, from the
 * directory POND_DASHBOARD_ASSETS. Optional:
 * POND_DASHBOARD_FROM / _TO (the period; the page's default otherwise),
 * POND_DASHBOARD_MARGIN (payback's margin; 0.5 with the mock, the API's
 * default otherwise),
 * POND_DASHBOARD_CUSTOMER (a key for the lookup; else the top inviter),
 * POND_CHROMIUM (default /usr/bin/chromium). The full-page screenshot goes
 * to $POND_TEST_ARTIFACTS/dashboard.png (default build/test-artifacts).
 *
 * For each report the test asks the API itself, with the period and "as of"
 * the page shows, and compares every figure of every row with the cell the
 * page marks data-key=ROW data-field=FIGURE, formatted by format.js (the
 * page's own rules: fen as yuan with 2 decimals, ratios as percents). Which
 * figure is money, a ratio or a count is written here, independently of
 * the page. It also checks that the page asked nothing of any other origin
 * and logged no error.
 */
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");
const { spawn } = require("child_process");

const root = path.resolve(__dirname, "../..");
const fmt = require(path.join(root, "services/reporting/dashboard/format.js"));
const { chromium } = require(path.join(root, "web/node_modules/playwright-core"));

const LTV_DAYS = [7, 30, 60, 90];
const RETENTION_WEEKS = 8;
const FUNNEL_WINDOW_DAYS = 30;

let base, token, mock, fileServer, browser, page, state;
const served = {}; /* path -> response headers, of the page's files */
const offOrigin = [];
const pageErrors = [];

/* --- the API, asked directly --------------------------------------------- */

async function api(p, params) {
	const q = new URLSearchParams();
	Object.entries(params || {}).forEach(([k, v]) => {
		if (v !== null && v !== undefined && v !== "") {
			q.set(k, String(v));
		}
	});
	const url = `${base}${p}${q.toString() ? "?" + q : ""}`;
	const resp = await fetch(url, {
		headers: { Authorization: `Bearer ${token}` },
	});
	assert.equal(resp.status, 200, `${url} answered ${resp.status}`);
	return resp.json();
}

function period(extra) {
	return { from: state.from, to: state.to, as_of: state.as_of, ...extra };
}

/* --- the page, read ------------------------------------------------------- */

/* readTables returns the tables of a panel as [{key: {field: text}}]. */
function readTables(panelId) {
	return page.$$eval(`#${panelId} table`, (tables) => tables.map((t) => {
		const rows = {};
		t.querySelectorAll("tr[data-key]").forEach((tr) => {
			const cells = {};
			tr.querySelectorAll("td[data-field]").forEach((td) => {
				cells[td.dataset.field] = td.textContent;
			});
			rows[tr.dataset.key] = cells;
		});
		return rows;
	}));
}

/* readFigures returns {field: text} of the labelled figures in sel. */
function readFigures(sel) {
	return page.$$eval(`${sel} [data-field]`, (els) =>
		Object.fromEntries(els.map((e) => [e.dataset.field,
			e.textContent])));
}

/* expectRows checks that table shows exactly the rows of apiRows (by
 * key(row)) and, for each, fields: {field: format name or function}. */
function expectRows(what, table, apiRows, key, fields) {
	assert.deepEqual(Object.keys(table).sort(),
		apiRows.map(key).map(String).sort(), `${what}: rows`);
	apiRows.forEach((row) => {
		const shown = table[String(key(row))];
		Object.entries(fields).forEach(([field, format]) => {
			const want = typeof format === "function" ? format(row) :
				fmt[format](dig(row, field));
			assert.equal(shown[field], want,
				`${what} ${key(row)} ${field}`);
		});
	});
}

function dig(obj, dotted) {
	return dotted.split(".").reduce((v, k) => (v == null ? v : v[k]), obj);
}

/* settled runs check, and when it fails runs refresh and check again (3
 * times at most): for the answers that take no as_of (goals, a customer),
 * which may change between the page's request and the test's. */
async function settled(check, refresh) {
	for (let attempt = 1; ; attempt++) {
		try {
			return await check();
		} catch (e) {
			if (attempt === 3 || !(e instanceof assert.AssertionError)) {
				throw e;
			}
			await refresh();
		}
	}
}

async function waitReady() {
	await page.waitForFunction(() =>
		["ready", "error"].includes(document.body.dataset.state),
		null, { timeout: 60000 });
	const status = await page.textContent("#status");
	assert.equal(await page.getAttribute("body", "data-state"), "ready",
		`the page did not load every panel: ${status}`);
}

/* --- set-up --------------------------------------------------------------- */

before(async () => {
	base = process.env.POND_DASHBOARD_URL;
	token = process.env.POND_DASHBOARD_TOKEN;
	if (!base) {
		let files = process.env.POND_DASHBOARD_ASSETS;
		if (process.env.POND_DASHBOARD_SERVER) {
			files = await startFileServer(
				process.env.POND_DASHBOARD_SERVER);
		}
		assert.ok(files, "POND_DASHBOARD_URL, POND_DASHBOARD_SERVER " +
			"or POND_DASHBOARD_ASSETS is needed");
		token = token || "mock-read-token";
		mock = await require("./mock").start(files, token, 0);
		base = mock.url;
	}
	assert.ok(token, "POND_DASHBOARD_TOKEN is needed with a URL");
	base = base.replace(/\/+$/, "");
	browser = await chromium.launch({
		executablePath: process.env.POND_CHROMIUM || "/usr/bin/chromium",
		args: ["--no-sandbox", "--disable-gpu"],
	});
	page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
	const origin = new URL(base).origin;
	page.on("request", (r) => {
		const u = new URL(r.url());
		if (u.origin !== origin && u.protocol !== "data:") {
			offOrigin.push(r.url());
		}
	});
	page.on("response", async (r) => {
		const u = new URL(r.url());
		if (u.origin === origin && !u.pathname.startsWith("/v1/")) {
			(served[u.pathname] = served[u.pathname] || []).push(
				{ status: r.status(), headers: await r.allHeaders() });
		}
	});
	page.on("pageerror", (e) => pageErrors.push(String(e)));
	/* The browser logs the 401 of a wrong token and the 404 of an
	 * unknown customer, which the tests ask for; missing files are caught
	 * by the list of files served. */
	page.on("console", (m) => {
		if (m.type() === "error" && !/^Failed to load resource: .* (401|404)/
			.test(m.text())) {
			pageErrors.push(m.text());
		}
	});
	const q = new URLSearchParams();
	if (process.env.POND_DASHBOARD_FROM) {
		q.set("from", process.env.POND_DASHBOARD_FROM);
	}
	if (process.env.POND_DASHBOARD_TO) {
		q.set("to", process.env.POND_DASHBOARD_TO);
	}
	/* Against the mock, a margin by default: its payback depends on it,
	 * so the test sees whether the page sends it. */
	const margin = process.env.POND_DASHBOARD_MARGIN || (mock ? "0.5" : "");
	if (margin) {
		q.set("margin", margin);
	}
	await page.goto(`${base}/${q.toString() ? "?" + q : ""}`);
});

after(async () => {
	if (browser) {
		await browser.close();
	}
	if (mock) {
		mock.server.close();
	}
	if (fileServer) {
		fileServer.kill("SIGTERM");
	}
});

/* startFileServer runs pond-dashboard-serve and resolves with its URL. */
function startFileServer(program) {
	fileServer = spawn(program, [], { stdio: ["ignore", "pipe", "inherit"] });
	return new Promise((resolve, reject) => {
		let out = "";
		fileServer.on("error", reject);
		fileServer.on("exit", (code) => reject(new Error(
			`${program} exited with ${code}`)));
		fileServer.stdout.on("data", (chunk) => {
			out += chunk;
			const m = out.match(/port (\d+)/);
			if (m) {
				resolve(`http://127.0.0.1:${m[1]}`);
			}
		});
	});
}

/* --- the tests ------------------------------------------------------------ */

test("asks for a read token, refuses a wrong one, then loads", async () => {
	await page.waitForSelector("#token-dialog[open]");
	await page.fill("#token-input", "not-a-token");
	await page.click("#token-submit");
	await page.waitForFunction(() =>
		document.querySelector("#token-error").textContent.includes("401"));
	assert.ok(await page.isVisible("#token-dialog[open]"));
	await page.fill("#token-input", token);
	await page.click("#token-submit");
	await waitReady();
	state = await page.evaluate(() => ({
		from: document.querySelector("#from").value,
		to: document.querySelector("#to").value,
		as_of: document.querySelector("#as_of").value,
		margin: document.querySelector("#margin").value,
	}));
	assert.match(state.from, /^\d{4}-\d{2}-\d{2}$/);
	assert.ok(state.as_of.length > 0);
	/* Kept for the session: a reload asks no more. */
	await page.reload();
	await waitReady();
	assert.equal(await page.isVisible("#token-dialog[open]"), false);
});

test("acquisition by channel", async () => {
	const r = await api("/v1/reports/acquisition", period());
	const [table] = await readTables("panel-acquisition");
	const rows = [...r.rows, { ...r.total, channel: "total" }];
	expectRows("acquisition", table, rows, (x) => x.channel, {
		new_customers: "count",
		spend_fen: "money",
		cac_fen: "money",
		incentive_fen: "money",
		full_cac_fen: "money",
	});
	/* The channel picker offers every channel of the period. */
	const options = await page.$$eval("#channel option",
		(os) => os.map((o) => o.value).filter(Boolean));
	assert.deepEqual(options.sort(), r.rows.map((x) => x.channel).sort());
});

test("LTV curves per cohort", async () => {
	const r = await api("/v1/reports/ltv",
		period({ days: LTV_DAYS.join(",") }));
	const [table] = await readTables("panel-ltv");
	const fields = { cohort_size: "count" };
	LTV_DAYS.forEach((d) => { fields[`ltv_fen.${d}`] = "money"; });
	expectRows("ltv", table, r.rows, (x) => x.channel, fields);
	assert.ok(r.rows.some((x) => x.channel === "all"));
});

test("payback per channel", async () => {
	const r = await api("/v1/reports/payback",
		period({ margin: state.margin }));
	const [table] = await readTables("panel-payback");
	expectRows("payback", table, r.rows, (x) => x.channel, {
		full_cac_fen: "money",
		payback_days: "days",
	});
});

test("lifecycle ladder and repurchase", async () => {
	const life = await api("/v1/reports/lifecycle", { as_of: state.as_of });
	const [table] = await readTables("panel-lifecycle");
	expectRows("lifecycle", table, life.rows, (x) => x.stage,
		{ customers: "count" });
	/* API.md: every stage has a row, zero or not. */
	assert.deepEqual(Object.keys(table).sort(), ["first_purchase", "loyal",
		"member", "potential", "repurchase"]);
	const rep = await api("/v1/reports/repurchase", period());
	const shown = await readFigures("#repurchase");
	const t = rep.total;
	assert.deepEqual(shown, {
		buyers: fmt.count(t.buyers),
		repeat_buyers: fmt.count(t.repeat_buyers),
		repurchase_rate: fmt.percent(t.repurchase_rate),
		lifetime_buyers: fmt.count(t.lifetime_buyers),
		lifetime_repeat_buyers: fmt.count(t.lifetime_repeat_buyers),
		lifetime_repurchase_rate: fmt.percent(t.lifetime_repurchase_rate),
	});
});

test("retention heatmap", async () => {
	const r = await api("/v1/reports/retention",
		period({ weeks: RETENTION_WEEKS }));
	const [table] = await readTables("panel-retention");
	const fields = { cohort_size: "count" };
	for (let k = 0; k < RETENTION_WEEKS; k++) {
		fields[`retained.${k}`] = "percent";
	}
	expectRows("retention", table, r.rows, (x) => x.week, fields);
	/* The heatmap has a cell per known share. */
	const known = r.rows.reduce((n, x) =>
		n + x.retained.filter((v) => v !== null).length, 0);
	const cells = await page.evaluate(() => {
		const c = echarts.getInstanceByDom(
			document.querySelector("#panel-retention .chart"));
		return c.getOption().series[0].data.length;
	});
	assert.equal(cells, known);
});

test("funnel", async () => {
	const r = await api("/v1/reports/funnel",
		period({ window_days: FUNNEL_WINDOW_DAYS }));
	const [table] = await readTables("panel-funnel");
	expectRows("funnel", table, r.rows, (x) => x.step, {
		customers: "count",
		rate_from_previous: "percent",
		rate_from_first: "percent",
	});
	assert.deepEqual(r.rows.map((x) => x.step),
		["added", "first_order", "second_order", "member"]);
});

test("campaigns with ROI and lift", async () => {
	const r = await api("/v1/reports/campaigns", period());
	const [table] = await readTables("panel-campaigns");
	/* suppressed is a count by reason; the page shows their sum. */
	const suppressed = (x) => fmt.count(typeof x.suppressed === "object" ?
		Object.values(x.suppressed).reduce((a, b) => a + b, 0) :
		x.suppressed);
	expectRows("campaigns", table, r.rows, (x) => x.campaign_id, {
		audience: "count",
		sent: "count",
		delivered: "count",
		failed: "count",
		suppressed,
		conversions: "count",
		revenue_fen: "money",
		cost_fen: "money",
		roi: "percent",
		holdout_size: "count",
		holdout_conversions: "count",
		lift: "percent",
	});
});

test("fission", async () => {
	const r = await api("/v1/reports/fission", period());
	const t = r.total;
	const shown = await readFigures("#panel-fission .figures");
	assert.deepEqual(shown, {
		invites_shared: fmt.count(t.invites_shared),
		inviters: fmt.count(t.inviters),
		invitees_added: fmt.count(t.invitees_added),
		successful_inviters: fmt.count(t.successful_inviters),
		k_factor: fmt.factor(t.k_factor),
	});
	const [table] = await readTables("panel-fission");
	expectRows("top inviters", table, t.top_inviters,
		(x) => x.customer_key, { invitees: "count" });
});

test("guides and stores leaderboard", async () => {
	const r = await api("/v1/reports/guides", period());
	const [guides, stores] = await readTables("panel-guides");
	const fields = {
		customers_added: "count",
		net_revenue_fen: "money",
		tier: "count",
		rate: "percent",
		commission_fen: "money",
	};
	const key = (x) => `${x.kind}:${x.kind === "guide" ? x.guide_id :
		x.store_id}`;
	expectRows("guides", guides, r.rows.filter((x) => x.kind === "guide"),
		key, fields);
	expectRows("stores", stores, r.rows.filter((x) => x.kind === "store"),
		key, fields);
	/* A leaderboard: most net revenue first. */
	const order = await page.$$eval(
		"#panel-guides table:first-of-type tr[data-key]",
		(trs) => trs.map((tr) => tr.dataset.key));
	const want = r.rows.filter((x) => x.kind === "guide")
		.sort((a, b) => b.net_revenue_fen - a.net_revenue_fen).map(key);
	assert.deepEqual(order, want);
});

test("portrait, by region and by channel", async () => {
	for (const groupBy of ["region", "channel"]) {
		if (groupBy !== "region") {
			await page.selectOption("#group_by", groupBy);
			await page.waitForSelector(
				"#panel-portrait[data-state=ready]");
		}
		const r = await api("/v1/reports/portrait",
			{ as_of: state.as_of, group_by: groupBy });
		const [table] = await readTables("panel-portrait");
		expectRows(`portrait ${groupBy}`, table, r.rows,
			(x) => (x.value === null ? "(none)" : x.value),
			{ customers: "count", share: "percent" });
	}
	await page.selectOption("#group_by", "region");
	await page.waitForSelector("#panel-portrait[data-state=ready]");
});

test("goals with their progress", async () => {
	/* target_value: the target resolved (a relative target_change
	 * applied to the baseline). */
	const target = (g) => ("target_value" in g ? g.target_value : g.target);
	await settled(async () => {
		const r = await api("/v1/goals");
		const goals = Array.isArray(r) ? r : r.rows || r.goals;
		const [table] = await readTables("panel-goals");
		expectRows("goals", table, goals, (g) => g.id, {
			baseline: (g) => fmt.metric(g.metric, g.baseline),
			target: (g) => fmt.metric(g.metric, target(g)),
			current: (g) => fmt.metric(g.metric, g.current),
			progress: "percent",
			time_elapsed: "percent",
			on_track: (g) => (g.on_track ? "yes" : "no"),
		});
	}, async () => {
		await page.click("#controls button[type=submit]");
		await waitReady();
	});
});

test("channel picker narrows acquisition, LTV and payback", async () => {
	const channels = await page.$$eval("#channel option",
		(os) => os.map((o) => o.value).filter(Boolean));
	assert.ok(channels.length > 0, "no channel to pick");
	const channel = channels[0];
	await page.selectOption("#channel", channel);
	await waitReady();
	const acq = await api("/v1/reports/acquisition", period({ channel }));
	const [table] = await readTables("panel-acquisition");
	expectRows("acquisition of one channel", table,
		[...acq.rows, { ...acq.total, channel: "total" }],
		(x) => x.channel, { new_customers: "count", full_cac_fen: "money" });
	assert.deepEqual(Object.keys(table).sort(), [channel, "total"].sort());
	const pb = await api("/v1/reports/payback",
		period({ channel, margin: state.margin }));
	const [pbTable] = await readTables("panel-payback");
	expectRows("payback of one channel", pbTable, pb.rows,
		(x) => x.channel, { payback_days: "days" });
	await page.selectOption("#channel", "");
	await waitReady();
});

test("customer lookup", async () => {
	let key = process.env.POND_DASHBOARD_CUSTOMER;
	if (!key) {
		const f = await api("/v1/reports/fission", period());
		key = (f.total.top_inviters[0] || {}).customer_key;
	}
	assert.ok(key, "no customer to look up (set POND_DASHBOARD_CUSTOMER)");
	const lookUp = async (k, state) => {
		await page.fill("#customer-key", k);
		await page.click("#customer-form button");
		await page.waitForSelector(`#panel-customer[data-state=${state}]`);
	};
	await lookUp(key, "ready");
	await settled(async () => {
		const c = await api(`/v1/customers/${encodeURIComponent(key)}`);
		const shown = await readFigures("#panel-customer .figures");
		assert.equal(shown.customer_key, key);
		assert.equal(shown.lifecycle,
			c.lifecycle || c.stage || (c.profile || {}).lifecycle);
		assert.equal(shown.events, fmt.count(c.events.length));
		const tags = await page.$$eval("#panel-customer .tags li",
			(lis) => lis.map((li) => li.textContent));
		assert.deepEqual(tags, c.tags.map((t) =>
			(typeof t === "string" ? t : t.tag)));
		/* Every event, in the API's order (event ids are unique only
		 * per publisher, so compare the lists). */
		const events = await page.$$eval("#panel-customer tr[data-key]",
			(trs) => trs.map((tr) => tr.dataset.key));
		assert.deepEqual(events, c.events.map((e) => String(e.event_id)));
	}, () => lookUp(key, "ready"));
	/* An unknown key is said so, not a crash. */
	await lookUp("no-such-customer-\u00e9", "error");
	assert.match(await page.textContent("#panel-customer .figures"),
		/No customer/);
	await lookUp(key, "ready");
});

test("every panel drawn, nothing fetched elsewhere, screenshot", async () => {
	const panels = await page.$$eval("section.panel", (ss) => ss.map((s) =>
		({ id: s.id, state: s.dataset.state,
			canvas: !!s.querySelector(".chart canvas, .chart svg"),
			chart: !!s.querySelector(".chart") })));
	assert.equal(panels.length, 12);
	panels.forEach((p) => {
		assert.equal(p.state, "ready", `${p.id} is ${p.state}`);
		assert.ok(!p.chart || p.canvas, `${p.id} has no chart drawn`);
	});
	assert.deepEqual(offOrigin, [], "requests to other origins");
	/* The page's own files, and how the server sent them (pond-reporting
	 * and pond-dashboard-serve: an ETag, and ECharts gzipped). */
	assert.deepEqual(Object.keys(served).sort(), ["/", "/assets/app.css",
		"/assets/app.js", "/assets/echarts.min.js", "/assets/format.js"]);
	if (!mock || process.env.POND_DASHBOARD_SERVER) {
		const [first, ...again] = served["/assets/echarts.min.js"];
		assert.equal(first.status, 200);
		/* The reload of the first test revalidated: 304, no body. */
		assert.ok(again.length > 0 &&
			again.every((x) => x.status === 304),
			JSON.stringify(again.map((x) => x.status)));
		assert.match(first.headers.etag || "", /^"[0-9a-f]{16}-gz"$/);
		assert.equal(first.headers["content-encoding"], "gzip");
	}
	assert.deepEqual(pageErrors, [], "errors in the page");
	const dir = process.env.POND_TEST_ARTIFACTS ||
		path.join(root, "build/test-artifacts");
	fs.mkdirSync(dir, { recursive: true });
	const file = path.join(dir, "dashboard.png");
	await page.screenshot({ path: file, fullPage: true });
	assert.ok(fs.statSync(file).size > 10000);
	console.log(`# screenshot: ${file}`);
});
