/*
 * test_ingest_world.c - what the ingest tests share (test_ingest.h).
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_ingest.h"

/* --- small helpers ----------------------------------------------------------
 */

/* strf returns a formatted string the caller frees. */
char *__attribute__((format(printf, 1, 2))) iw_strf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	cr_assert(vasprintf(&s, fmt, ap) >= 0, "out of memory");
	va_end(ap);
	return (s);
}

/* repeat returns n copies of c (the caller frees). */
char *
iw_repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return (s);
}

/* clock_plus formats the test clock's start plus usec into buf. */
const char *
iw_clock_plus(pond_time usec, char *buf, size_t len)
{
	pond_time start;

	cr_assert_eq(pond_time_parse_rfc3339(POND_TEST_CLOCK_START, &start),
	             0);
	return (pond_time_format_rfc3339(start + usec, buf, len));
}

long long
iw_count(const ic_service *svc, const char *sql)
{
	return (pond_test_sql_int(svc->dsn, sql));
}

/* expect_result checks one result without ending the test, so that every
 * wrong result of a batch is reported (and the test still frees what it
 * holds). */
void
iw_expect_result(ic_result r, size_t i, const char *event_id,
                 const char *status, const char *code)
{
	cr_expect_str_eq(r.event_id, event_id, "result %zu: event_id '%s'", i,
	                 r.event_id);
	cr_expect_str_eq(r.status, status,
	                 "result %zu (%s): status %s, expected %s", i,
	                 event_id, r.status, status);
	cr_expect_str_eq(r.code, code,
	                 "result %zu (%s): code '%s', expected '%s'", i,
	                 event_id, r.code, code);
}

/* --- one batch over either transport --------------------------------------
 */

/* events_body returns {"events": [e0, e1, ...]} for JSON texts. */
char *
iw_events_body(const char *const *events, size_t n)
{
	size_t len = 16;
	char *body, *p;

	for (size_t i = 0; i < n; i++) {
		len += strlen(events[i]) + 1;
	}
	body = p = malloc(len);
	cr_assert_not_null(body);
	p += sprintf(p, "{\"events\": [");
	for (size_t i = 0; i < n; i++) {
		p += sprintf(p, "%s%s", i > 0 ? "," : "", events[i]);
	}
	sprintf(p, "]}");
	return (body);
}

/* send_json sends the events (JSON texts) as one batch with svc's token:
 * over NNG packed by the common codec, over HTTP as they are. */
reply
iw_send_json(const ic_service *svc, via how, const char *const *events,
             size_t n)
{
	reply r = {.how = how};

	if (how == VIA_NNG) {
		ic_batch b = {0};
		ic_nng c;

		for (size_t i = 0; i < n; i++) {
			ic_batch_add_json(&b, events[i]);
		}
		ic_nng_open(&c, svc->nng_url, IC_TIMEOUT_MS);
		r.ack = ic_nng_send(&c, &b, svc->token);
		ic_nng_close(&c);
		ic_batch_free(&b);
	} else {
		char *body = iw_events_body(events, n);

		r.answer = ic_http_events(svc, body, &r.http_status);
		free(body);
	}
	return (r);
}

/* reply_usable reports, without ending the test, whether r holds one
 * result for each of n events (and not a batch error or an HTTP error). */
bool
iw_reply_usable(const reply *r, size_t n)
{
	size_t got;

	if (r->how == VIA_NNG && r->ack->batch_error != NULL) {
		cr_expect_fail("the whole batch failed: %s (%s)",
		               r->ack->batch_error->code,
		               r->ack->batch_error->message);
		return (false);
	}
	if (r->how == VIA_HTTP && r->http_status != 200) {
		char *text = json_dumps(r->answer, JSON_ENCODE_ANY);
		cr_expect_fail("POST /v1/events answered %d: %s",
		               r->http_status, text);
		free(text);
		return (false);
	}
	got = r->how == VIA_NNG
	              ? r->ack->n_results
	              : json_array_size(json_object_get(r->answer, "results"));
	cr_expect_eq(got, n, "%zu results for %zu events", got, n);
	return (got == n);
}

size_t
iw_reply_count(const reply *r)
{
	cr_assert(r->how == VIA_NNG || r->http_status == 200,
	          "POST /v1/events answered %d", r->http_status);
	if (r->how == VIA_NNG) {
		cr_assert_null(r->ack->batch_error, "batch_error %s",
		               r->ack->batch_error != NULL
		                       ? r->ack->batch_error->code
		                       : "");
		return (r->ack->n_results);
	}
	return (json_array_size(json_object_get(r->answer, "results")));
}

ic_result
iw_reply_result(const reply *r, size_t i)
{
	return (r->how == VIA_NNG ? ic_ack_result(r->ack, i)
	                          : ic_json_result(r->answer, i));
}

void
iw_reply_free(reply *r)
{
	ic_ack_free(r->ack);
	json_decref(r->answer);
	memset(r, 0, sizeof(*r));
}
