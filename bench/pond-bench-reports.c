/*
 * pond-bench-reports.c - report latency over a large generated history.
 *
 *   pond-bench-reports --load 1 --customers N --events M --end EPOCH
 *     fills the reporting fact tables (rpt_*) of POND_DSN with a history of
 *     N customers and about M events over the 365 days before --end, with
 *     INSERT ... SELECT from generate_series: the rows the reporting
 *     consumer would have built from those events (the events table itself
 *     is not written; no report reads it). The rollups of migration 0007
 *     and the day cells of 0008 are maintained by their triggers during
 *     the load, as for the consumer, then the cells are folded (0009), as
 *     pond-reporting's timer does.
 *     Prints: customers= facts= load_s= (fold included) fold_s=
 *
 *   pond-bench-reports --url tcp://... --token T --requests R --end EPOCH
 *     asks pond-reporting for every report over NNG REQ/REP (ReportRequest,
 *     the same code as HTTP), R times each after one unmeasured warm-up,
 *     one request at a time. The period is the last 30 whole days in
 *     POND_TZ (default Asia/Shanghai) up to --end, as YYYY-MM-DD like the
 *     dashboard's, and as_of is --end (every fact is before it). Prints a
 *     line per report: report= p50_ms= p95_ms= max_ms= status=
 */
#include <libpq-fe.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "pond/report.pb-c.h"

static long long opt_load = 0, opt_customers = 100000, opt_events = 2000000;
static long long opt_requests = 20, opt_end = 0;
static const char *opt_url = NULL, *opt_token = "", *opt_only = NULL;

/* One report to ask for: its path and its parameters beyond the period
 * ("k=v&k=v"); period false: no from/to. */
typedef struct bench_report {
	const char *label, *report, *extra;
	bool period;
	long as_of_back_s; /* as_of = end - this many seconds */
} bench_report;

/* A past as_of: 180 days back, at the last second of an hour, the most
 * that lifecycle and the portrait read from the facts (the changes of
 * the hour before it: 0014_reporting_history.sql). */
#define PAST (180L * 86400 - 3599)

static const bench_report reports[] = {
        {"acquisition", "acquisition", "", true, 0},
        {"ltv", "ltv", "days=30,60,90", true, 0},
        {"payback", "payback", "margin=0.4", true, 0},
        {"repurchase", "repurchase", "", true, 0},
        {"guides", "guides", "", true, 0},
        {"retention", "retention", "weeks=8", true, 0},
        {"funnel", "funnel", "window_days=30", true, 0},
        {"fission", "fission", "", true, 0},
        {"campaigns", "campaigns", "", true, 0},
        {"lifecycle", "lifecycle", "", false, 0},
        {"lifecycle, as_of 180 days back at :59:59", "lifecycle", "", false,
         PAST},
        {"portrait region", "portrait", "group_by=region", false, 0},
        {"portrait industry", "portrait", "group_by=industry", false, 0},
        {"portrait channel", "portrait", "group_by=channel", false, 0},
        {"portrait lifecycle", "portrait", "group_by=lifecycle", false, 0},
        {"portrait tag", "portrait", "group_by=tag", false, 0},
        {"portrait region, tag tag03", "portrait", "group_by=region&tag=tag03",
         false, 0},
        {"portrait region, as_of 180 days back at :59:59", "portrait",
         "group_by=region", false, PAST},
};

/* The generator. %1$s is the end of the history (RFC 3339), %2$lld the
 * customers, %3$lld interactions per customer on average. Customer i is
 * acquired uniformly over the year; orders (avg 3, one in 15 a refund),
 * interactions, rewards (30 %), members (10 %), invites (5 %), profile
 * facts (1.2), tag changes (1.4), touches (20 % in the last 60 days) are
 * spread after the acquisition. */
/* clang-format off */
static const char gen_sql[] =
	"SELECT setseed(0.42);"
	"CREATE TEMP TABLE bc AS SELECT i, i %% 16 AS partition,"
	" 'c' || i AS customer_key, e - interval '365 days' + random() *"
	" interval '365 days' AS acquired_at, e FROM generate_series(1, %2$lld)"
	" i, (SELECT '%1$s'::timestamptz AS e) x;"
	"INSERT INTO rpt_orders SELECT partition, customer_key, 1000 + g,"
	" acquired_at + random() ^ 2 * (e - acquired_at), 'o' || i || '-' || g,"
	" 'bench', g %% 15 <> 0, 1000 + (random() * 29000)::bigint FROM bc,"
	" generate_series(1, (random() * 6.99 + 0 * i)::int) g;"
	"INSERT INTO rpt_activity SELECT partition, customer_key, 2000 + g,"
	" acquired_at + random() * (e - acquired_at) FROM bc,"
	" generate_series(1, (random() * %3$lld * 2 + 0 * i)::int) g;"
	"INSERT INTO rpt_rewards SELECT partition, customer_key, 3000,"
	" acquired_at + interval '1 hour', 200 + (random() * 800)::bigint,"
	" CASE WHEN i %% 20 = 0 THEN 'fission-1' END FROM bc"
	" WHERE i %% 10 < 3 AND acquired_at + interval '1 hour' < e;"
	"INSERT INTO rpt_members SELECT partition, customer_key, 4000,"
	" acquired_at + random() * (e - acquired_at) FROM bc WHERE i %% 10 = 1;"
	"INSERT INTO rpt_invites SELECT partition, customer_key, 5000 + g,"
	" acquired_at + random() * (e - acquired_at), 'fission-1' FROM bc,"
	" generate_series(1, 2) g WHERE i %% 20 = 3;"
	"INSERT INTO rpt_profile_facts SELECT partition, customer_key, 6000 + g,"
	" acquired_at + g * random() * (e - acquired_at) / 2, 'p' || i || '-' || g,"
	" 'bench', true, 'r' || lpad((1 + (i::bigint * g * 7919) %% 31)::text, 2, '0'),"
	" g = 1, CASE WHEN g = 1 THEN 'ind' || (i %% 20) END FROM bc,"
	" generate_series(1, CASE WHEN i %% 5 = 0 THEN 2 ELSE 1 END) g;"
	"INSERT INTO rpt_tag_changes SELECT partition, customer_key, 7000 + g,"
	" 'tag' || lpad((1 + (i + g) %% 12)::text, 2, '0'), true,"
	" acquired_at + random() * (e - acquired_at) / 2 FROM bc,"
	" generate_series(1, CASE WHEN i %% 10 < 4 THEN 2 ELSE 1 END) g;"
	"INSERT INTO rpt_tag_changes SELECT partition, customer_key, 7100,"
	" 'tag' || lpad((1 + (i + 1) %% 12)::text, 2, '0'), false,"
	" e - random() * (e - acquired_at) / 3 FROM bc WHERE i %% 10 = 5;"
	"CREATE TEMP TABLE bt AS SELECT partition, customer_key, 'camp-' ||"
	" (1 + i %% 5) AS campaign_id, 't' || i AS touch_id, greatest("
	" acquired_at, e - random() * interval '60 days') AS selected_at,"
	" i %% 20 = 7 AS held_out, i, e FROM bc WHERE i %% 5 = 2;"
	"INSERT INTO rpt_touch_changes SELECT partition, customer_key,"
	" 8000 + s.n, touch_id, campaign_id, 'wecom', s.state, NULL,"
	" selected_at + s.n * interval '1 minute', selected_at,"
	" CASE WHEN s.state = 'sent' THEN 10 ELSE 0 END FROM bt,"
	" (VALUES (0, 'selected'), (1, 'sent'), (2, 'delivered'),"
	" (3, 'held_out')) s(n, state) WHERE CASE WHEN held_out THEN s.n IN"
	" (0, 3) ELSE s.n = 0 OR s.n = 1 OR (s.n = 2 AND i %% 10 <> 2) END"
	" AND selected_at + s.n * interval '1 minute' < e;"
	"INSERT INTO rpt_spend SELECT 0, row_number() OVER (), ch,"
	" e - d * interval '1 day', 50000 + (random() * 50000)::bigint FROM"
	" unnest(ARRAY['card', 'phone', 'sms', 'ai_call', 'article', 'douyin',"
	" 'poster', 'referral']) ch, generate_series(1, 365) d,"
	" (SELECT '%1$s'::timestamptz AS e) x;"
	"INSERT INTO rpt_customers (partition, customer_key, first_event_at,"
	" member_at, first_paid, acquired_at, acq_event_id, acq_publisher,"
	" channel, guide_id, store_id, inviter_key, campaign_id)"
	" SELECT bc.partition, bc.customer_key, bc.acquired_at, m.occurred_at,"
	" COALESCE(o.t, '{}'), bc.acquired_at, 'a' || i, 'bench',"
	" (ARRAY['card', 'phone', 'sms', 'ai_call', 'article', 'douyin',"
	" 'poster', 'referral'])[1 + i %% 8], CASE WHEN i %% 10 < 3 THEN 'g' ||"
	" (i %% 500) END, CASE WHEN i %% 10 < 4 THEN 's' || (i %% 50) END,"
	" CASE WHEN i %% 20 = 0 AND i > 20 THEN 'c' || (i / 7) END,"
	" CASE WHEN i %% 20 = 0 THEN 'fission-1' END FROM bc"
	" LEFT JOIN rpt_members m USING (partition, customer_key)"
	" LEFT JOIN (SELECT partition, customer_key, (array_agg(occurred_at"
	"  ORDER BY occurred_at))[1:3] AS t FROM rpt_orders WHERE paid"
	"  GROUP BY 1, 2) o USING (partition, customer_key);";
/* clang-format on */

static const char *const fact_tables[] = {
        "rpt_customers",     "rpt_orders",      "rpt_activity",
        "rpt_rewards",       "rpt_members",     "rpt_invites",
        "rpt_profile_facts", "rpt_tag_changes", "rpt_touch_changes",
        "rpt_spend"};

static void
exec_or_die(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		bench_die("%s", PQerrorMessage(conn));
	}
	PQclear(res);
}

static void
time_text(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* local_day writes the day of t, less days_back days, in POND_TZ (TZ is
 * set from it in main) as YYYY-MM-DD. */
static void
local_day(time_t t, int days_back, char *buf, size_t len)
{
	struct tm tm;

	localtime_r(&t, &tm);
	tm.tm_mday -= days_back;
	tm.tm_hour = 12; /* mktime normalizes; noon is clear of DST */
	tm.tm_isdst = -1;
	t = mktime(&tm);
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d", &tm);
}

static void
load(void)
{
	const char *dsn = getenv("POND_DSN");
	char end[40], *sql = NULL, count_sql[512];
	long long facts = 0;
	PGconn *conn;

	if (dsn == NULL || (conn = PQconnectdb(dsn)) == NULL ||
	    PQstatus(conn) != CONNECTION_OK) {
		bench_die("cannot connect to POND_DSN");
	}
	time_text((time_t)opt_end, end, sizeof(end));
	long long per = opt_events / opt_customers - 5;
	if (asprintf(&sql, gen_sql, end, opt_customers, per < 1 ? 1 : per) <
	    0) {
		bench_die("out of memory");
	}
	double t0 = bench_clock();
	exec_or_die(conn, "BEGIN");
	exec_or_die(conn, sql);
	exec_or_die(conn, "COMMIT");
	free(sql);
	/* The cells as pond-reporting's timer keeps them: folded. */
	double t1 = bench_clock();
	exec_or_die(conn, "SELECT rpt_cells_fold()");
	double fold_s = bench_clock() - t1;
	exec_or_die(conn, "VACUUM ANALYZE rpt_cells");
	for (size_t i = 0; i < sizeof(fact_tables) / sizeof(*fact_tables);
	     i++) {
		snprintf(count_sql, sizeof(count_sql), "VACUUM ANALYZE %s",
		         fact_tables[i]);
		exec_or_die(conn, count_sql);
		snprintf(count_sql, sizeof(count_sql),
		         "SELECT count(*) FROM %s", fact_tables[i]);
		PGresult *res = PQexec(conn, count_sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			bench_die("%s", PQerrorMessage(conn));
		}
		facts += atoll(PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	printf("customers=%lld facts=%lld load_s=%.1f fold_s=%.1f\n",
	       opt_customers, facts, bench_clock() - t0, fold_s);
	PQfinish(conn);
}

/* ask sends one ReportRequest and waits for its reply; returns the
 * reply's status. */
static unsigned
ask(nng_socket s, const bench_report *r)
{
	Pond__ReportRequest__ParamsEntry ent[8], *ents[8];
	Pond__ReportRequest req = POND__REPORT_REQUEST__INIT;
	char from[40], to[40], as_of[40], extra[256], *save = NULL;
	size_t n = 0;

	local_day((time_t)opt_end, 30, from, sizeof(from));
	local_day((time_t)opt_end, 0, to, sizeof(to));
	time_text((time_t)opt_end - (time_t)r->as_of_back_s, as_of,
	          sizeof(as_of));
	const char *kv[8][2] = {{"as_of", as_of}, {"from", from}, {"to", to}};
	n = r->period ? 3 : 1;
	snprintf(extra, sizeof(extra), "%s", r->extra);
	for (char *tok = strtok_r(extra, "&", &save); tok != NULL && n < 8;
	     tok = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(tok, '=');
		*eq = '\0';
		kv[n][0] = tok;
		kv[n++][1] = eq + 1;
	}
	for (size_t i = 0; i < n; i++) {
		pond__report_request__params_entry__init(&ent[i]);
		ent[i].key = (char *)kv[i][0];
		ent[i].value = (char *)kv[i][1];
		ents[i] = &ent[i];
	}
	req.token = (char *)opt_token;
	req.report = (char *)r->report;
	req.n_params = n;
	req.params = ents;
	size_t len = pond__report_request__get_packed_size(&req);
	uint8_t *buf = malloc(len + 1);
	void *reply = NULL;
	size_t rlen = 0;
	if (buf == NULL) {
		bench_die("out of memory");
	}
	pond__report_request__pack(&req, buf);
	int rv = nng_send(s, buf, len, 0);
	free(buf);
	if (rv != 0 ||
	    (rv = nng_recv(s, &reply, &rlen, NNG_FLAG_ALLOC)) != 0) {
		bench_die("%s: %s", r->label, nng_strerror(rv));
	}
	Pond__ReportReply *rep = pond__report_reply__unpack(NULL, rlen, reply);
	nng_free(reply, rlen);
	if (rep == NULL) {
		bench_die("%s: not a ReportReply", r->label);
	}
	unsigned status = rep->status;
	if (status != 200) {
		bench_die("%s: status %u: %s", r->label, status,
		          rep->error != NULL ? rep->error : "");
	}
	pond__report_reply__free_unpacked(rep, NULL);
	return (status);
}

/* wanted says whether --only (comma-separated labels) names label. */
static bool
wanted(const char *label)
{
	size_t n = strlen(label);

	for (const char *p = opt_only; p != NULL && *p != '\0';) {
		if (strncmp(p, label, n) == 0 &&
		    (p[n] == ',' || p[n] == '\0')) {
			return (true);
		}
		p = strchr(p, ',');
		p = p != NULL ? p + 1 : NULL;
	}
	return (opt_only == NULL);
}

static void
query(void)
{
	nng_socket s;
	int rv;

	if ((rv = nng_req0_open(&s)) != 0 ||
	    (rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 600000)) != 0 ||
	    (rv = nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, 3600000)) !=
	            0 ||
	    (rv = nng_dial(s, opt_url, NULL, 0)) != 0) {
		bench_die("%s: %s", opt_url, nng_strerror(rv));
	}
	double *lat = calloc((size_t)opt_requests, sizeof(double));
	if (lat == NULL) {
		bench_die("out of memory");
	}
	for (size_t i = 0; i < sizeof(reports) / sizeof(*reports); i++) {
		if (!wanted(reports[i].label)) {
			continue;
		}
		unsigned status = ask(s, &reports[i]);
		for (long long k = 0; k < opt_requests; k++) {
			double t0 = bench_clock();
			if (ask(s, &reports[i]) != status) {
				bench_die("%s: the status changed",
				          reports[i].label);
			}
			lat[k] = bench_clock() - t0;
		}
		double p50 = bench_percentile(lat, (size_t)opt_requests, 0.5);
		double p95 = bench_percentile(lat, (size_t)opt_requests, 0.95);
		double max = bench_percentile(lat, (size_t)opt_requests, 1.0);
		printf("report=%s p50_ms=%.1f p95_ms=%.1f max_ms=%.1f "
		       "status=%u\n",
		       reports[i].label, p50 * 1e3, p95 * 1e3, max * 1e3,
		       status);
		fflush(stdout);
	}
	free(lat);
	nng_close(s);
}

int
main(int argc, char **argv)
{
	const bench_opt opts[] = {
	        {"load", true, &opt_load,
	         "1: generate the history (POND_DSN)"},
	        {"customers", true, &opt_customers, "customers to generate"},
	        {"events", true, &opt_events, "events, about, to generate"},
	        {"end", true, &opt_end, "end of the history (epoch seconds)"},
	        {"url", false, &opt_url, "pond-reporting's NNG REP url"},
	        {"token", false, &opt_token, "an API token (read role)"},
	        {"requests", true, &opt_requests,
	         "measured requests a report"},
	        {"only", false, &opt_only,
	         "ask only these reports (labels, comma-separated)"},
	};

	bench_parse(argc, argv,
	            "report latency over a generated history (load or ask)",
	            opts, sizeof(opts) / sizeof(*opts));
	if (opt_end <= 0 || opt_customers < 1 || opt_requests < 1) {
		bench_die(
		        "--end, --customers and --requests must be positive");
	}
	const char *tz = getenv("POND_TZ");
	setenv("TZ", tz != NULL && *tz != '\0' ? tz : "Asia/Shanghai", 1);
	tzset();
	if (opt_load) {
		load();
	}
	if (opt_url != NULL) {
		query();
	}
	return (0);
}
