/*
 * test_metrics.c - the metrics registry and its Prometheus text.
 *
 * Small registries are rendered and compared with text written out by hand
 * from the exposition format; a larger one goes through promtool, the
 * Prometheus project's own checker.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

static pond_metrics *
new_registry(void)
{
	pond_metrics *m = NULL;
	cr_assert_eq(pond_metrics_create(&m), 0);
	return (m);
}

static void
assert_render(pond_metrics *m, const char *want)
{
	size_t len = 0;
	char *got = pond_metrics_render(m, &len);

	cr_assert_not_null(got);
	cr_expect_str_eq(got, want);
	cr_expect_eq(len, strlen(want));
	free(got);
}

Test(metrics, empty_registry_renders_nothing)
{
	pond_metrics *m = new_registry();
	assert_render(m, "");
	pond_metrics_destroy(m);
}

Test(metrics, counters_and_gauges_group_by_family)
{
	pond_metrics *m = new_registry();
	pond_counter accepted = {0}, rejected = {0};
	pond_gauge depth = {0};

	cr_assert_eq(pond_metrics_counter(m, "pond_events_total",
	                                  "Events by status.",
	                                  "status=\"accepted\"", &accepted),
	             0);
	cr_assert_eq(pond_metrics_gauge(m, "pond_queue_depth", "Jobs waiting.",
	                                NULL, &depth),
	             0);
	/* A later series of the first family still renders with it. */
	cr_assert_eq(pond_metrics_counter(m, "pond_events_total",
	                                  "Events by status.",
	                                  "status=\"rejected\"", &rejected),
	             0);
	pond_counter_add(&accepted, 3);
	pond_counter_inc(&rejected);
	pond_gauge_set(&depth, -5);

	assert_render(m, "# HELP pond_events_total Events by status.\n"
	                 "# TYPE pond_events_total counter\n"
	                 "pond_events_total{status=\"accepted\"} 3\n"
	                 "pond_events_total{status=\"rejected\"} 1\n"
	                 "# HELP pond_queue_depth Jobs waiting.\n"
	                 "# TYPE pond_queue_depth gauge\n"
	                 "pond_queue_depth -5\n");
	pond_metrics_destroy(m);
}

Test(metrics, histogram_is_cumulative_with_le_label)
{
	static const double bounds[] = {0.1, 0.5, 1};
	pond_metrics *m = new_registry();
	pond_histogram h;

	pond_histogram_init(&h, bounds, 3);
	cr_assert_eq(pond_metrics_histogram(m, "pond_op_seconds", "Op time.",
	                                    "op=\"read\"", &h),
	             0);
	/* 0.05 and 0.1 are <= 0.1 (le is inclusive); 0.3 <= 0.5; 2 only in
	 * +Inf. Cumulative: 2, 3, 3, 4. Sum 0.05 + 0.1 + 0.3 + 2 = 2.45. */
	pond_histogram_observe(&h, 0.05);
	pond_histogram_observe(&h, 0.1);
	pond_histogram_observe(&h, 0.3);
	pond_histogram_observe(&h, 2);

	assert_render(m, "# HELP pond_op_seconds Op time.\n"
	                 "# TYPE pond_op_seconds histogram\n"
	                 "pond_op_seconds_bucket{op=\"read\",le=\"0.1\"} 2\n"
	                 "pond_op_seconds_bucket{op=\"read\",le=\"0.5\"} 3\n"
	                 "pond_op_seconds_bucket{op=\"read\",le=\"1\"} 3\n"
	                 "pond_op_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n"
	                 "pond_op_seconds_sum{op=\"read\"} 2.45\n"
	                 "pond_op_seconds_count{op=\"read\"} 4\n");
	pond_metrics_destroy(m);
}

Test(metrics, histogram_without_labels)
{
	static const double bounds[] = {0.0005, 2.5, 10, 100};
	pond_metrics *m = new_registry();
	pond_histogram h;

	pond_histogram_init(&h, bounds, 4);
	cr_assert_eq(pond_metrics_histogram(m, "lat_seconds", "L.", NULL, &h),
	             0);
	/* 3 s falls in le="10"; 0.1 ms in the first bucket. Sum 3.0001. */
	pond_histogram_observe(&h, 3);
	pond_histogram_observe(&h, 0.0001);
	assert_render(m, "# HELP lat_seconds L.\n"
	                 "# TYPE lat_seconds histogram\n"
	                 "lat_seconds_bucket{le=\"0.0005\"} 1\n"
	                 "lat_seconds_bucket{le=\"2.5\"} 1\n"
	                 "lat_seconds_bucket{le=\"10\"} 2\n"
	                 "lat_seconds_bucket{le=\"100\"} 2\n"
	                 "lat_seconds_bucket{le=\"+Inf\"} 2\n"
	                 "lat_seconds_sum 3.0001\n"
	                 "lat_seconds_count 2\n");
	pond_metrics_destroy(m);
}

static void
collect_lag(pond_metrics_writer *w, void *arg)
{
	int *calls = arg;
	(*calls)++;
	pond_metrics_emit(w, "partition=\"0\"", 7);
	pond_metrics_emit(w, "partition=\"1\"", 0.25);
	pond_metrics_emit(w, "partition=\"2\"", 1e6);
	pond_metrics_emit(w, "partition=\"3\"", 1.0 / 0.0);
	pond_metrics_emit(w, "bad labels", 1); /* dropped, not rendered */
}

Test(metrics, collector_emits_at_each_render)
{
	pond_metrics *m = new_registry();
	pond_counter c = {0};
	int calls = 0;

	cr_assert_eq(pond_metrics_collector(m, "pond_stream_lag",
	                                    "Records behind.", "gauge",
	                                    collect_lag, &calls),
	             0);
	cr_assert_eq(pond_metrics_counter(m, "pond_x_total", "X.", NULL, &c),
	             0);
	const char *want = "# HELP pond_stream_lag Records behind.\n"
	                   "# TYPE pond_stream_lag gauge\n"
	                   "pond_stream_lag{partition=\"0\"} 7\n"
	                   "pond_stream_lag{partition=\"1\"} 0.25\n"
	                   "pond_stream_lag{partition=\"2\"} 1000000\n"
	                   "pond_stream_lag{partition=\"3\"} +Inf\n"
	                   "# HELP pond_x_total X.\n"
	                   "# TYPE pond_x_total counter\n"
	                   "pond_x_total 0\n";
	assert_render(m, want);
	assert_render(m, want);
	cr_expect_eq(calls, 2);
	pond_metrics_destroy(m);
}

Test(metrics, help_is_escaped)
{
	pond_metrics *m = new_registry();
	pond_gauge g = {0};

	cr_assert_eq(pond_metrics_gauge(m, "g", "a\\b\nc", NULL, &g), 0);
	assert_render(m, "# HELP g a\\\\b\\nc\n# TYPE g gauge\ng 0\n");
	pond_metrics_destroy(m);
}

Test(metrics, bad_registrations_are_refused)
{
	pond_metrics *m = new_registry();
	pond_counter c = {0}, d = {0};
	pond_gauge g = {0};
	pond_histogram h;

	pond_histogram_init(&h, pond_latency_bounds, pond_latency_nbounds);
	cr_expect_eq(pond_metrics_counter(m, "a_total", "A.", "k=\"v\"", &c),
	             0);
	cr_expect_eq(pond_metrics_counter(m, "a_total", "A.", "k=\"v\"", &d),
	             POND_EEXIST);
	cr_expect_eq(pond_metrics_gauge(m, "a_total", "A.", "k=\"w\"", &g),
	             POND_EINVAL);
	cr_expect_eq(pond_metrics_counter(m, "1a_total", "A.", NULL, &d),
	             POND_EINVAL);
	cr_expect_eq(pond_metrics_counter(m, "a-b_total", "A.", NULL, &d),
	             POND_EINVAL);
	cr_expect_eq(pond_metrics_counter(m, "b_total", "B.", "k=v", &d),
	             POND_EINVAL);
	cr_expect_eq(pond_metrics_counter(m, "b_total", "B.", "k=\"v", &d),
	             POND_EINVAL);
	cr_expect_eq(pond_metrics_counter(m, "b_total", "B.", "k=\"v\",", &d),
	             POND_EINVAL);
	cr_expect_eq(
	        pond_metrics_histogram(m, "h_seconds", "H.", "le=\"1\"", &h),
	        POND_EINVAL);
	cr_expect_eq(pond_metrics_collector(m, "c", "C.", "summary",
	                                    collect_lag, NULL),
	             POND_EINVAL);
	cr_expect_eq(pond_metrics_counter(m, "b_total", "B.",
	                                  "k=\"a \\\"q\\\" \\\\ \\n\",j=\"\"",
	                                  &d),
	             0);
	pond_metrics_destroy(m);
}

Test(metrics, latency_bounds_are_sane)
{
	cr_assert_leq(pond_latency_nbounds, POND_HISTOGRAM_MAX_BUCKETS);
	cr_expect_eq(pond_latency_bounds[0], 0.0005);
	cr_expect_eq(pond_latency_bounds[pond_latency_nbounds - 1], 10.0);
	for (size_t i = 1; i < pond_latency_nbounds; i++) {
		cr_expect_lt(pond_latency_bounds[i - 1],
		             pond_latency_bounds[i]);
	}
}

static pond_histogram shared_hist;
static pond_counter shared_counter;

static void *
observe_many(void *arg)
{
	for (int i = 0; i < 10000; i++) {
		pond_histogram_observe(&shared_hist, 0.001); /* 1 ms */
		pond_counter_inc(&shared_counter);
	}
	return (NULL);
}

Test(metrics, observe_from_many_threads)
{
	pthread_t t[4];

	pond_histogram_init(&shared_hist, pond_latency_bounds,
	                    pond_latency_nbounds);
	atomic_store(&shared_counter.value, 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pthread_create(&t[i], NULL, observe_many, NULL),
		             0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
	}
	/* 40,000 observations of exactly 1 ms: 40 s in all, each in the
	 * le="0.001" bucket (index 1). */
	cr_expect_eq(atomic_load(&shared_hist.count), 40000);
	cr_expect_eq(atomic_load(&shared_hist.buckets[1]), 40000);
	cr_expect_eq(atomic_load(&shared_hist.sum_ns), 40000 * 1000000ull);
	cr_expect_eq(atomic_load(&shared_counter.value), 40000);
}

static void
collect_partitions(pond_metrics_writer *w, void *arg)
{
	char labels[64];
	for (int p = 0; p < 4; p++) {
		snprintf(labels, sizeof(labels),
		         "stream=\"events\",partition="
		         "\"%d\"",
		         p);
		pond_metrics_emit(w, labels, p * 10);
	}
}

/* check_counter_names asserts every counter family ends in _total, the
 * convention promtool's lint enforces. */
static void
check_counter_names(const char *text)
{
	const char *p = text;
	while ((p = strstr(p, "# TYPE ")) != NULL) {
		char name[128], type[32];
		cr_assert_eq(sscanf(p, "# TYPE %127s %31s", name, type), 2);
		if (strcmp(type, "counter") == 0) {
			size_t n = strlen(name);
			cr_expect(n > 6 && strcmp(name + n - 6, "_total") == 0,
			          "counter %s does not end in _total", name);
		}
		p += 7;
	}
}

Test(metrics, render_passes_promtool)
{
	pond_metrics *m = new_registry();
	pond_counter accepted = {0}, rejected = {0};
	pond_gauge depth = {0};
	pond_histogram lat, db;
	char path[] = "/tmp/pond-metrics-XXXXXX";
	char cmd[256];

	pond_histogram_init(&lat, pond_latency_bounds, pond_latency_nbounds);
	pond_histogram_init(&db, pond_latency_bounds, pond_latency_nbounds);
	cr_assert_eq(pond_metrics_counter(m, "pond_ingest_events_total",
	                                  "Events by outcome.",
	                                  "status=\"accepted\"", &accepted),
	             0);
	cr_assert_eq(pond_metrics_counter(m, "pond_ingest_events_total",
	                                  "Events by outcome.",
	                                  "status=\"rejected\"", &rejected),
	             0);
	cr_assert_eq(pond_metrics_gauge(m, "pond_queue_depth",
	                                "Jobs waiting for a store connection.",
	                                NULL, &depth),
	             0);
	cr_assert_eq(pond_metrics_histogram(m, "pond_request_duration_seconds",
	                                    "Request latency.", "api=\"http\"",
	                                    &lat),
	             0);
	cr_assert_eq(pond_metrics_histogram(m, "pond_request_duration_seconds",
	                                    "Request latency.", "api=\"nng\"",
	                                    &db),
	             0);
	cr_assert_eq(pond_metrics_collector(
	                     m, "pond_stream_lag_records",
	                     "Records a consumer is behind, per partition.",
	                     "gauge", collect_partitions, NULL),
	             0);
	pond_counter_add(&accepted, 12345);
	pond_gauge_set(&depth, 3);
	for (int i = 0; i < 100; i++) {
		pond_histogram_observe(&lat, i * 0.0137);
		pond_histogram_observe(&db, i * 0.21);
	}

	size_t len;
	char *text = pond_metrics_render(m, &len);
	cr_assert_not_null(text);
	check_counter_names(text);
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	int status = system(cmd);
	unlink(path);
	cr_expect_eq(status, 0, "promtool rejected:\n%s", text);
	free(text);
	pond_metrics_destroy(m);
}
