/*
 * app.js - the operators' dashboard.
 *
 * The page talks only to the reporting HTTP API of its own origin
 * (API.md sections 4 and 6) with "Authorization: Bearer <read token>"; the
 * token is asked for once per browser session (sessionStorage) and again
 * after a 401. Every panel shows its figures as a table -- each cell marked
 * with data-key (the row) and data-field (the figure) so the browser test
 * can find it -- and as an ECharts chart. Numbers are written by
 * format.js (PondFormat), the one definition of how money, ratios and
 * counts look.
 *
 * The period (from, to), "as of" and the channel are in the address
 * (?from=2026-01-01&to=2026-04-01&as_of=...&channel=...&margin=0.4), so a
 * view can be
 * bookmarked; "as of" defaults to the moment the page was opened, which
 * keeps every panel on the same snapshot while events keep arriving.
 */
(function () {
	"use strict";

	const fmt = window.PondFormat;
	const TOKEN_KEY = "pond.read_token";
	const LTV_DAYS = [7, 30, 60, 90];
	const RETENTION_WEEKS = 8;
	const FUNNEL_WINDOW_DAYS = 30;
	const DEFAULT_PERIOD_DAYS = 90;

	const $ = (sel, root) => (root || document).querySelector(sel);

	/* --- the API --------------------------------------------------- */

	class ApiError extends Error {
		constructor(status, message) {
			super(message);
			this.status = status;
		}
	}

	let tokenWaiters = [];

	/* token resolves with the session's token, asking for one first
	 * when there is none. */
	function token() {
		const t = sessionStorage.getItem(TOKEN_KEY);
		if (t) {
			return Promise.resolve(t);
		}
		return new Promise((resolve) => {
			tokenWaiters.push(resolve);
			askToken("");
		});
	}

	function askToken(message) {
		const dialog = $("#token-dialog");
		$("#token-error").textContent = message;
		if (!dialog.open) {
			dialog.showModal();
		}
		$("#token-input").focus();
	}

	function tokenGiven(t) {
		sessionStorage.setItem(TOKEN_KEY, t);
		$("#token-dialog").close();
		const waiters = tokenWaiters;
		tokenWaiters = [];
		waiters.forEach((resolve) => resolve(t));
	}

	/* api GETs path with params (null values left out) and resolves with
	 * the JSON reply; a 401 forgets the token, asks again and retries. */
	async function api(path, params) {
		const query = new URLSearchParams();
		Object.entries(params || {}).forEach(([k, v]) => {
			if (v !== null && v !== undefined && v !== "") {
				query.set(k, v);
			}
		});
		const url = path + (query.toString() ? "?" + query : "");
		for (;;) {
			const t = await token();
			const resp = await fetch(url, {
				headers: { Authorization: "Bearer " + t },
			});
			if (resp.status === 401) {
				if (sessionStorage.getItem(TOKEN_KEY) === t) {
					sessionStorage.removeItem(TOKEN_KEY);
				}
				await new Promise((resolve) => {
					tokenWaiters.push(resolve);
					askToken("That token was refused (401).");
				});
				continue;
			}
			let body = null;
			try {
				body = await resp.json();
			} catch (e) {
				throw new ApiError(resp.status, `${url}: not JSON`);
			}
			if (!resp.ok) {
				const err = (body && body.error) || {};
				throw new ApiError(resp.status,
					`${url}: ${resp.status} ${err.code || ""} ` +
					(err.message || ""));
			}
			return body;
		}
	}

	/* --- building blocks -------------------------------------------- */

	function el(tag, attrs, children) {
		const e = document.createElement(tag);
		Object.entries(attrs || {}).forEach(([k, v]) => {
			if (k === "text") {
				e.textContent = v;
			} else if (k.startsWith("data-")) {
				e.setAttribute(k, v);
			} else {
				e[k] = v;
			}
		});
		(children || []).forEach((c) => e.append(c));
		return e;
	}

	/* get reads a dotted path ("ltv_fen.30", "retained.2") of row. */
	function get(row, path) {
		return String(path).split(".").reduce(
			(v, k) => (v === null || v === undefined ? undefined : v[k]),
			row);
	}

	/* table renders rows into panel's .table: columns are
	 * {field, label, format} with format a PondFormat function name or a
	 * function of the row; key(row) names the row; empty is what an
	 * empty table says. */
	function table(panel, columns, rows, key, caption, empty) {
		const head = el("tr", {}, columns.map((c) =>
			el("th", { text: c.label, className: c.text ? "" : "num" })));
		const body = rows.map((row) => el("tr", { "data-key": key(row) },
			columns.map((c) => {
				const text = typeof c.format === "function" ?
					c.format(row) : fmt[c.format](get(row, c.field));
				return el("td", {
					"data-field": c.field,
					text,
					className: c.text ? "" : "num",
				});
			})));
		const t = el("table", {}, [
			caption ? el("caption", { text: caption }) : "",
			el("thead", {}, [head]),
			el("tbody", {}, body),
		]);
		if (rows.length === 0) {
			t.append(el("tr", { className: "empty" }, [el("td", {
				colSpan: columns.length,
				text: empty || "no data in this period",
			})]));
		}
		return t;
	}

	function showTable(panel, ...tables) {
		$(".table", panel).replaceChildren(...tables);
	}

	/* figures renders {field: [label, format]} of obj as a list of
	 * labelled numbers in container. */
	function figures(container, spec, obj) {
		container.replaceChildren(...Object.entries(spec).map(
			([field, [label, format]]) => el("div", { className: "figure" }, [
				el("span", {
					className: "value",
					"data-field": field,
					text: fmt[format](obj[field]),
				}),
				el("span", { className: "label", text: label }),
			])));
	}

	function chart(panel, option) {
		const div = $(".chart", panel);
		const c = echarts.getInstanceByDom(div) || echarts.init(div);
		c.setOption(Object.assign({
			animation: false,
			textStyle: { fontFamily: getComputedStyle(document.body)
				.fontFamily },
			tooltip: { trigger: "axis" },
			grid: { left: 60, right: 60, top: 50, bottom: 40 },
		}, option), true);
		c.resize(); /* the div may have changed size (retention) */
	}

	const yuan = (fen) => (fen === null ? null : fen / 100);
	const pct = (r) => (r === null ? null : Math.round(r * 1000) / 10);
	const channelName = (row) => row.channel;
	const channelColumn = (label) =>
		({ field: "channel", label, text: true, format: channelName });

	/* --- panels ------------------------------------------------------ */

	function period(state) {
		return { from: state.from, to: state.to, as_of: state.as_of };
	}

	const panels = {
		async acquisition(panel, state) {
			const r = await api("/v1/reports/acquisition",
				{ ...period(state), channel: state.channel });
			const cols = [
				channelColumn("channel"),
				{ field: "new_customers", label: "new customers",
					format: "count" },
				{ field: "spend_fen", label: "spend", format: "money" },
				{ field: "cac_fen", label: "CAC", format: "money" },
				{ field: "incentive_fen", label: "incentives",
					format: "money" },
				{ field: "full_cac_fen", label: "full CAC",
					format: "money" },
			];
			const total = { ...r.total, channel: "total" };
			showTable(panel, table(panel, cols, [...r.rows, total],
				channelName));
			chart(panel, {
				legend: { top: 0 },
				xAxis: { type: "category",
					data: r.rows.map(channelName) },
				yAxis: [{ type: "value", name: "yuan" },
					{ type: "value", name: "customers" }],
				series: [
					{ name: "CAC", type: "bar",
						data: r.rows.map((x) => yuan(x.cac_fen)) },
					{ name: "full CAC", type: "bar",
						data: r.rows.map((x) =>
							yuan(x.full_cac_fen)) },
					{ name: "new customers", type: "line",
						yAxisIndex: 1,
						data: r.rows.map((x) => x.new_customers) },
				],
			});
		},

		async ltv(panel, state) {
			const r = await api("/v1/reports/ltv", {
				...period(state),
				days: LTV_DAYS.join(","),
				channel: state.channel,
			});
			const cols = [
				channelColumn("cohort"),
				{ field: "cohort_size", label: "customers",
					format: "count" },
				...LTV_DAYS.map((d) => ({
					field: `ltv_fen.${d}`,
					label: `LTV ${d} d`,
					format: "money",
				})),
			];
			showTable(panel, table(panel, cols, r.rows, channelName));
			chart(panel, {
				legend: { type: "scroll", top: 0 },
				xAxis: { type: "category", name: "days",
					data: LTV_DAYS.map(String) },
				yAxis: { type: "value", name: "yuan" },
				series: r.rows.map((row) => ({
					name: row.channel,
					type: "line",
					data: LTV_DAYS.map((d) =>
						yuan(get(row, `ltv_fen.${d}`))),
				})),
			});
		},

		async payback(panel, state) {
			/* margin: the share of revenue that is profit (the API's
			 * default, 1.0, when left empty). */
			const r = await api("/v1/reports/payback", { ...period(state),
				channel: state.channel, margin: state.margin });
			const cols = [
				channelColumn("channel"),
				{ field: "full_cac_fen", label: "full CAC",
					format: "money" },
				{ field: "payback_days", label: "payback (days)",
					format: "days" },
			];
			showTable(panel, table(panel, cols, r.rows, channelName));
			chart(panel, {
				xAxis: { type: "category",
					data: r.rows.map(channelName) },
				yAxis: { type: "value", name: "days" },
				series: [{ name: "payback days", type: "bar",
					label: { show: true, position: "top" },
					data: r.rows.map((x) => x.payback_days) }],
			});
		},

		async lifecycle(panel, state) {
			const [life, rep] = await Promise.all([
				api("/v1/reports/lifecycle", { as_of: state.as_of }),
				api("/v1/reports/repurchase", period(state)),
			]);
			const cols = [
				{ field: "stage", label: "stage", text: true,
					format: (row) => row.stage },
				{ field: "customers", label: "customers",
					format: "count" },
			];
			showTable(panel, table(panel, cols, life.rows,
				(row) => row.stage));
			figures($("#repurchase", panel), {
				buyers: ["buyers in the period", "count"],
				repeat_buyers: ["repeat buyers", "count"],
				repurchase_rate: ["repurchase rate", "percent"],
				lifetime_buyers: ["buyers, lifetime", "count"],
				lifetime_repeat_buyers: ["repeat buyers, lifetime",
					"count"],
				lifetime_repurchase_rate: ["repurchase rate, lifetime",
					"percent"],
			}, rep.total);
			chart(panel, {
				tooltip: { trigger: "item" },
				grid: { left: 110, right: 40, top: 10, bottom: 30 },
				xAxis: { type: "value" },
				yAxis: { type: "category",
					data: life.rows.map((x) => x.stage) },
				series: [{ type: "bar", name: "customers",
					label: { show: true, position: "right" },
					data: life.rows.map((x) => x.customers) }],
			});
		},

		async retention(panel, state) {
			const r = await api("/v1/reports/retention",
				{ ...period(state), weeks: RETENTION_WEEKS });
			const weeks = [...Array(RETENTION_WEEKS).keys()];
			const cols = [
				{ field: "week", label: "week of", text: true,
					format: (row) => row.week },
				{ field: "cohort_size", label: "cohort",
					format: "count" },
				...weeks.map((k) => ({
					field: `retained.${k}`,
					label: `w${k}`,
					format: "percent",
				})),
			];
			showTable(panel, table(panel, cols, r.rows,
				(row) => row.week));
			/* A row of cells per weekly cohort, however many. */
			$(".chart", panel).style.height =
				`${Math.max(280, 90 + 26 * r.rows.length)}px`;
			const cells = [];
			r.rows.forEach((row, y) => weeks.forEach((k) => {
				const v = row.retained[k];
				if (v !== null && v !== undefined) {
					cells.push([k, y, pct(v)]);
				}
			}));
			chart(panel, {
				tooltip: { trigger: "item" },
				grid: { left: 90, right: 20, top: 10, bottom: 90 },
				xAxis: { type: "category", name: "week",
					data: weeks.map((k) => `w${k}`) },
				yAxis: { type: "category",
					data: r.rows.map((x) => x.week) },
				visualMap: { min: 0, max: 100, calculable: true,
					orient: "horizontal", left: "center",
					bottom: 0, itemHeight: 120 },
				series: [{ type: "heatmap", name: "retained %",
					label: { show: true }, data: cells }],
			});
		},

		async funnel(panel, state) {
			const r = await api("/v1/reports/funnel",
				{ ...period(state), window_days: FUNNEL_WINDOW_DAYS });
			const cols = [
				{ field: "step", label: "step", text: true,
					format: (row) => row.step },
				{ field: "customers", label: "customers",
					format: "count" },
				{ field: "rate_from_previous", label: "from previous",
					format: "percent" },
				{ field: "rate_from_first", label: "from first",
					format: "percent" },
			];
			showTable(panel, table(panel, cols, r.rows,
				(row) => row.step));
			chart(panel, {
				tooltip: { trigger: "item" },
				series: [{
					type: "funnel", sort: "none", gap: 2,
					left: "10%", width: "80%",
					label: { formatter: "{b}: {c}" },
					data: r.rows.map((x) => ({ name: x.step,
						value: x.customers })),
				}],
			});
		},

		async campaigns(panel, state) {
			const r = await api("/v1/reports/campaigns", period(state));
			const name = (row) => row.name || String(row.campaign_id);
			const cols = [
				{ field: "name", label: "campaign", text: true,
					format: name },
				{ field: "audience", label: "audience",
					format: "count" },
				{ field: "sent", label: "sent", format: "count" },
				{ field: "delivered", label: "delivered",
					format: "count" },
				{ field: "failed", label: "failed", format: "count" },
				{ field: "suppressed", label: "suppressed",
					format: (row) => fmt.count(
						suppressedTotal(row.suppressed)) },
				{ field: "conversions", label: "conversions",
					format: "count" },
				{ field: "revenue_fen", label: "revenue",
					format: "money" },
				{ field: "cost_fen", label: "cost", format: "money" },
				{ field: "roi", label: "ROI", format: "percent" },
				{ field: "holdout_size", label: "hold-out",
					format: "count" },
				{ field: "holdout_conversions",
					label: "hold-out conv.", format: "count" },
				{ field: "lift", label: "lift", format: "percent" },
			];
			showTable(panel, table(panel, cols, r.rows,
				(row) => String(row.campaign_id)));
			chart(panel, {
				legend: { top: 0 },
				xAxis: { type: "category", data: r.rows.map(name) },
				yAxis: { type: "value", name: "%" },
				series: [
					{ name: "ROI", type: "bar",
						data: r.rows.map((x) => pct(x.roi)) },
					{ name: "lift", type: "bar",
						data: r.rows.map((x) => pct(x.lift)) },
				],
			});
		},

		async fission(panel, state) {
			const r = await api("/v1/reports/fission", period(state));
			const t = r.total;
			figures($(".figures", panel), {
				invites_shared: ["invites shared", "count"],
				inviters: ["inviters", "count"],
				invitees_added: ["invitees added", "count"],
				successful_inviters: ["successful inviters", "count"],
				k_factor: ["K-factor", "factor"],
			}, t);
			const top = t.top_inviters || [];
			const cols = [
				{ field: "customer_key", label: "top inviter",
					text: true, format: (row) => row.customer_key },
				{ field: "invitees", label: "invitees",
					format: "count" },
			];
			showTable(panel, table(panel, cols, top,
				(row) => row.customer_key));
			chart(panel, {
				grid: { left: 110, right: 40, top: 10, bottom: 30 },
				xAxis: { type: "value" },
				yAxis: { type: "category", inverse: true,
					data: top.map((x) => x.customer_key) },
				series: [{ type: "bar", name: "invitees",
					label: { show: true, position: "right" },
					data: top.map((x) => x.invitees) }],
			});
		},

		async guides(panel, state) {
			const r = await api("/v1/reports/guides", period(state));
			const byRevenue = (a, b) =>
				b.net_revenue_fen - a.net_revenue_fen;
			const cols = (kind) => [
				{ field: "id", label: kind, text: true,
					format: guideId },
				{ field: "customers_added", label: "customers added",
					format: "count" },
				{ field: "net_revenue_fen", label: "net revenue",
					format: "money" },
				{ field: "tier", label: "tier", format: "count" },
				{ field: "rate", label: "rate", format: "percent" },
				{ field: "commission_fen", label: "commission",
					format: "money" },
			];
			const guides = r.rows.filter((x) => x.kind === "guide")
				.sort(byRevenue);
			const stores = r.rows.filter((x) => x.kind === "store")
				.sort(byRevenue);
			showTable(panel,
				table(panel, cols("guide"), guides, guideKey,
					"Guides"),
				table(panel, cols("store"), stores, guideKey,
					"Stores"));
			const top = [...guides.slice(0, 8), ...stores.slice(0, 4)];
			chart(panel, {
				legend: { top: 0 },
				grid: { left: 110, right: 40, top: 30, bottom: 30 },
				xAxis: { type: "value", name: "yuan" },
				yAxis: { type: "category", inverse: true,
					data: top.map(guideKey) },
				series: [
					{ name: "net revenue", type: "bar",
						data: top.map((x) =>
							yuan(x.net_revenue_fen)) },
					{ name: "commission", type: "bar",
						data: top.map((x) =>
							yuan(x.commission_fen)) },
				],
			});
		},

		async portrait(panel, state) {
			const r = await api("/v1/reports/portrait", {
				as_of: state.as_of,
				group_by: $("#group_by").value,
			});
			const label = (row) =>
				(row.value === null ? "(none)" : String(row.value));
			const cols = [
				{ field: "value", label: "value", text: true,
					format: label },
				{ field: "customers", label: "customers",
					format: "count" },
				{ field: "share", label: "share", format: "percent" },
			];
			showTable(panel, table(panel, cols, r.rows, label));
			chart(panel, {
				tooltip: { trigger: "item" },
				series: [{ type: "pie", radius: ["35%", "70%"],
					label: { formatter: "{b}: {d}%" },
					data: r.rows.map((x) => ({ name: label(x),
						value: x.customers })) }],
			});
		},

		async goals(panel) {
			const r = await api("/v1/goals");
			const goals = goalList(r);
			const cols = [
				{ field: "id", label: "goal", text: true,
					format: (g) => String(g.id) },
				{ field: "metric", label: "metric", text: true,
					format: (g) => g.metric },
				{ field: "baseline", label: "baseline",
					format: (g) => fmt.metric(g.metric, g.baseline) },
				{ field: "target", label: "target",
					format: (g) => fmt.metric(g.metric,
						goalTarget(g)) },
				{ field: "current", label: "current",
					format: (g) => fmt.metric(g.metric, g.current) },
				{ field: "progress", label: "progress",
					format: "percent" },
				{ field: "time_elapsed", label: "time elapsed",
					format: "percent" },
				{ field: "on_track", label: "on track", text: true,
					format: (g) => (g.on_track ? "yes" : "no") },
				{ field: "deadline", label: "deadline", text: true,
					format: (g) => String(g.deadline || "") },
			];
			showTable(panel, table(panel, cols, goals,
				(g) => String(g.id), "",
				"no goals set (PUT /v1/goals/ID with an admin token)"));
			chart(panel, {
				grid: { left: 110, right: 40, top: 10, bottom: 30 },
				xAxis: { type: "value", max: 100, name: "%" },
				yAxis: { type: "category", inverse: true,
					data: goals.map((g) => String(g.id)) },
				series: [{ type: "bar", name: "progress",
					label: { show: true, position: "right",
						formatter: "{c}%" },
					data: goals.map((g) => ({
						value: pct(g.progress),
						itemStyle: { color: g.on_track ?
							"#2e7d32" : "#c62828" },
					})) }],
			});
		},
	};

	function suppressedTotal(s) {
		if (s && typeof s === "object") {
			return Object.values(s).reduce((a, b) => a + b, 0);
		}
		return s;
	}

	function guideId(row) {
		return row.kind === "store" ? row.store_id : row.guide_id;
	}

	function guideKey(row) {
		return `${row.kind}:${guideId(row)}`;
	}

	/* goalList accepts the goals as rows (the report shape), as "goals",
	 * or as a bare array. */
	function goalList(r) {
		if (Array.isArray(r)) {
			return r;
		}
		return r.rows || r.goals || [];
	}

	/* goalTarget is the target as a value: the service's target_value
	 * (a relative target_change resolved against the baseline), else
	 * target itself. */
	function goalTarget(g) {
		return "target_value" in g ? g.target_value : g.target;
	}

	/* --- customer lookup --------------------------------------------- */

	async function lookUp(key) {
		const panel = $("#panel-customer");
		panel.dataset.state = "loading";
		try {
			const c = await api("/v1/customers/" +
				encodeURIComponent(key));
			showCustomer(panel, c);
			panel.dataset.state = "ready";
		} catch (e) {
			$(".figures", panel).replaceChildren(el("p", {
				className: "error",
				text: e.status === 404 ? `No customer “${key}”.` :
					e.message,
			}));
			showTable(panel);
			panel.dataset.state = "error";
		}
	}

	function showCustomer(panel, c) {
		const profile = c.profile || {};
		const stage = c.lifecycle || c.stage || profile.lifecycle || "";
		const tags = c.tags || [];
		const events = c.events || [];
		const facts = Object.entries(profile).filter(([, v]) =>
			v === null || typeof v !== "object");
		$(".figures", panel).replaceChildren(
			el("div", { className: "figure" }, [
				el("span", { className: "value", "data-field":
					"customer_key", text: c.customer_key || "" }),
				el("span", { className: "label", text: "customer" }),
			]),
			el("div", { className: "figure" }, [
				el("span", { className: "value",
					"data-field": "lifecycle", text: stage }),
				el("span", { className: "label", text: "stage" }),
			]),
			el("div", { className: "figure" }, [
				el("span", { className: "value", "data-field":
					"events", text: fmt.count(events.length) }),
				el("span", { className: "label", text: "events" }),
			]),
			el("ul", { className: "tags", "data-field": "tags" },
				tags.map((t) => el("li", {
					text: typeof t === "string" ? t : t.tag,
				}))),
			el("dl", { className: "profile" }, facts.flatMap(([k, v]) => [
				el("dt", { text: k }),
				el("dd", { "data-field": `profile.${k}`,
					text: profileText(k, v) }),
			])));
		const cols = [
			{ field: "occurred_at", label: "occurred at", text: true,
				format: (e) => e.occurred_at },
			{ field: "type", label: "event", text: true,
				format: eventType },
			{ field: "detail", label: "detail", text: true,
				format: eventDetail },
		];
		showTable(panel, table(panel, cols, events,
			(e) => String(e.event_id)));
	}

	function profileText(key, v) {
		if (v === null) {
			return fmt.NONE;
		}
		return /_fen$/.test(key) ? fmt.money(Number(v)) : String(v);
	}

	/* eventType is the event's body name: its "type", or the one known
	 * body field the proto3 JSON form carries. */
	const BODIES = ["contact_added", "contact_removed", "order_paid",
		"order_refunded", "channel_spend", "reward_paid",
		"member_joined", "interaction", "invite_shared",
		"profile_updated", "opt_out", "opt_in", "touch_receipt"];

	function eventType(e) {
		return e.type || BODIES.find((b) => b in e) || "";
	}

	function eventDetail(e) {
		const body = e[eventType(e)];
		if (!body || typeof body !== "object") {
			return "";
		}
		return Object.entries(body)
			.filter(([, v]) => v !== null && typeof v !== "object")
			.map(([k, v]) => (/_fen$/.test(k) ?
				`${k.replace(/_fen$/, "")} ${fmt.money(Number(v))}` :
				`${k} ${v}`))
			.join(", ");
	}

	/* --- the page ------------------------------------------------------ */

	function dateOnly(d) {
		const pad = (n) => String(n).padStart(2, "0");
		return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-` +
			pad(d.getDate());
	}

	/* stateFromAddress reads the view from the address, defaulting to
	 * the last DEFAULT_PERIOD_DAYS days up to today, as of now. */
	function stateFromAddress() {
		const q = new URLSearchParams(location.search);
		const tomorrow = new Date();
		tomorrow.setDate(tomorrow.getDate() + 1);
		const start = new Date(tomorrow);
		start.setDate(start.getDate() - DEFAULT_PERIOD_DAYS);
		const now = new Date();
		now.setMilliseconds(0);
		return {
			from: q.get("from") || dateOnly(start),
			to: q.get("to") || dateOnly(tomorrow),
			as_of: q.get("as_of") ||
				now.toISOString().replace(".000Z", "Z"),
			channel: q.get("channel") || "",
			margin: q.get("margin") || "",
		};
	}

	function stateFromForm() {
		return {
			from: $("#from").value,
			to: $("#to").value,
			as_of: $("#as_of").value.trim(),
			channel: $("#channel").value,
			margin: $("#margin").value.trim(),
		};
	}

	function showState(s) {
		$("#from").value = s.from;
		$("#to").value = s.to;
		$("#as_of").value = s.as_of;
		$("#margin").value = s.margin;
		setChannel(s.channel);
	}

	function setChannel(channel) {
		const select = $("#channel");
		if (channel && ![...select.options].some((o) =>
			o.value === channel)) {
			select.append(el("option", { value: channel,
				text: channel }));
		}
		select.value = channel;
	}

	/* refreshChannels lists the channels with customers or spend in
	 * the period (the acquisition report without a channel). */
	async function refreshChannels(state) {
		const r = await api("/v1/reports/acquisition", period(state));
		const select = $("#channel");
		select.replaceChildren(el("option", { value: "",
			text: "all channels" }), ...r.rows.map((row) =>
			el("option", { value: row.channel, text: row.channel })));
		setChannel(state.channel);
	}

	let generation = 0;

	/* load fetches every panel for state; a newer load makes an older
	 * one's late answers irrelevant (they are still drawn, then
	 * redrawn). body[data-state] is "ready" when all panels are. */
	async function load(state) {
		const mine = ++generation;
		document.body.dataset.state = "loading";
		$("#status").textContent = "Loading…";
		const q = new URLSearchParams(Object.entries(state)
			.filter(([, v]) => v !== ""));
		history.replaceState(null, "", "?" + q);
		const jobs = Object.entries(panels).map(async ([name, fill]) => {
			const panel = $(`#panel-${name}`);
			panel.dataset.state = "loading";
			try {
				await fill(panel, state);
				panel.dataset.state = "ready";
				$(".panel-error", panel)?.remove();
			} catch (e) {
				panel.dataset.state = "error";
				$(".panel-error", panel)?.remove();
				panel.append(el("p", { className: "panel-error error",
					text: e.message }));
				throw e;
			}
		});
		jobs.push(refreshChannels(state));
		const results = await Promise.allSettled(jobs);
		if (mine !== generation) {
			return;
		}
		const failed = results.filter((x) => x.status === "rejected");
		document.body.dataset.state = failed.length ? "error" : "ready";
		$("#status").textContent = failed.length ?
			`${failed.length} panel(s) failed: ` +
			failed.map((x) => x.reason.message).join("; ") :
			`Period ${state.from} to ${state.to} (as of ` +
			`${state.as_of}).`;
	}

	function start() {
		$("#token-form").addEventListener("submit", (ev) => {
			ev.preventDefault();
			const t = $("#token-input").value.trim();
			if (t) {
				$("#token-input").value = "";
				tokenGiven(t);
			}
		});
		$("#token-dialog").addEventListener("cancel",
			(ev) => ev.preventDefault());
		$("#sign-out").addEventListener("click", () => {
			sessionStorage.removeItem(TOKEN_KEY);
			load(stateFromForm());
		});
		$("#controls").addEventListener("submit", (ev) => {
			ev.preventDefault();
			load(stateFromForm());
		});
		$("#channel").addEventListener("change",
			() => load(stateFromForm()));
		$("#group_by").addEventListener("change", () => {
			const panel = $("#panel-portrait");
			panel.dataset.state = "loading";
			panels.portrait(panel, stateFromForm()).then(
				() => { panel.dataset.state = "ready"; },
				(e) => {
					panel.dataset.state = "error";
					$("#status").textContent = e.message;
				});
		});
		$("#customer-form").addEventListener("submit", (ev) => {
			ev.preventDefault();
			const key = $("#customer-key").value.trim();
			if (key) {
				lookUp(key);
			}
		});
		window.addEventListener("resize", () => {
			document.querySelectorAll(".chart").forEach((div) => {
				const c = echarts.getInstanceByDom(div);
				if (c) {
					c.resize();
				}
			});
		});
		const state = stateFromAddress();
		showState(state);
		load(state);
	}

	start();
})();
