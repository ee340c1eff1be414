/*
 * mock.js - a stand-in for pond-reporting's HTTP port: serves the built
 * dashboard files (the directory mk/dashboard.sh fills) at / and
 * /assets/NAME, and the reporting API from fixtures.js behind a bearer
 * token, on 127.0.0.1.
 *
 *   node tests/dashboard/mock.js ASSET_DIR [PORT]   (prints the URL)
 *
 * or from the browser test: require("./mock").start(dir, token, port).
 * When dir is a URL (http://127.0.0.1:PORT of pond-dashboard-serve), every
 * request outside /v1/ is passed there as it is, so the browser gets the
 * files embedded in the C binary with their ETags and gzip.
 */
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");
const { reply } = require("./fixtures");

const TYPES = {
	".html": "text/html; charset=utf-8",
	".js": "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
};

function send(res, status, type, body) {
	res.writeHead(status, { "Content-Type": type,
		"Cache-Control": "no-cache" });
	res.end(body);
}

function sendJson(res, status, obj) {
	send(res, status, "application/json", JSON.stringify(obj));
}

function asset(dir, urlPath) {
	let name = null;
	if (urlPath === "/") {
		name = "index.html";
	} else if (/^\/assets\/[A-Za-z0-9._-]+$/.test(urlPath)) {
		name = urlPath.slice("/assets/".length);
	}
	if (name === null || name.endsWith(".gz")) {
		return null;
	}
	const file = path.join(dir, name);
	return fs.existsSync(file) ? file : null;
}

/* pass forwards req to the file server at base and its answer back. */
function pass(base, req, res) {
	const headers = { ...req.headers };
	delete headers.host;
	const out = http.request(new URL(req.url, base),
		{ method: req.method, headers }, (answer) => {
			res.writeHead(answer.statusCode, answer.headers);
			answer.pipe(res);
		});
	out.on("error", (e) => sendJson(res, 502, { error: {
		code: "bad_gateway", message: String(e) } }));
	out.end();
}

/* start listens on 127.0.0.1:port (0: any free one) and resolves with
 * {server, url}. */
function start(dir, token, port) {
	const server = http.createServer((req, res) => {
		const url = new URL(req.url, "http://localhost");
		if (req.method !== "GET" && req.method !== "HEAD") {
			return sendJson(res, 405, { error: {
				code: "method_not_allowed", message: req.method } });
		}
		if (url.pathname.startsWith("/v1/")) {
			if (req.headers.authorization !== `Bearer ${token}`) {
				return sendJson(res, 401, { error: {
					code: "unauthorized",
					message: "a read token is needed" } });
			}
			const r = reply(url.pathname, url.searchParams);
			return sendJson(res, r.status, r.body);
		}
		if (/^https?:/.test(dir)) {
			return pass(dir, req, res);
		}
		const file = asset(dir, url.pathname);
		if (file === null) {
			return sendJson(res, 404, { error: { code: "not_found",
				message: "no such path on this server" } });
		}
		return send(res, 200, TYPES[path.extname(file)] ||
			"application/octet-stream", fs.readFileSync(file));
	});
	return new Promise((resolve, reject) => {
		server.once("error", reject);
		server.listen(port || 0, "127.0.0.1", () => {
			const url = `http://127.0.0.1:${server.address().port}`;
			resolve({ server, url });
		});
	});
}

module.exports = { start };

if (require.main === module) {
	const dir = process.argv[2];
	if (!dir) {
		console.error("usage: node tests/dashboard/mock.js ASSET_DIR [PORT]");
		process.exit(2);
	}
	const token = process.env.POND_DASHBOARD_TOKEN || "mock-read-token";
	start(dir, token, Number(process.argv[3] || 0)).then(({ url }) => {
		console.log(`mock reporting API on ${url} (token ${token})`);
	});
}
