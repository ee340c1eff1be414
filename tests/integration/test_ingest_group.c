/*
 * test_ingest_group.c - batches that wait are settled together.
 *
 * With one store job (POND_INGEST_STORE_JOBS=1), a batch held up in the
 * store makes the next batches queue; they are then settled in one
 * transaction. A batch whose commit fails inside such a group must not cost
 * the others theirs: each is settled again on its own.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "harness.h"
#include "ingest_client.h"

#define PER_BATCH 50

typedef struct sender {
	const ic_service *svc;
	int index; /* 0: the slow batch; 1: holds 'boom' */
	Pond__IngestAck *ack;
} sender;

static void *
send_batch(void *arg)
{
	sender *s = arg;
	ic_batch batch = {0};
	ic_nng client;
	char json[256];

	for (int i = 0; i < PER_BATCH; i++) {
		const char *id = json;
		char idbuf[32];
		if (i == 0 && s->index == 0) {
			id = "slow";
		} else if (i == 0 && s->index == 1) {
			id = "boom";
		} else {
			snprintf(idbuf, sizeof(idbuf), "b%d-%d", s->index, i);
			id = idbuf;
		}
		snprintf(json, sizeof(json),
		         "{\"event_id\": \"%s\", \"customer_key\": \"c%d\", "
		         "\"occurred_at\": \"" IC_EVENT_TIME "\", "
		         "\"interaction\": {\"kind\": \"message\"}}",
		         id, i);
		ic_batch_add_json(&batch, json);
	}
	ic_bytes req = ic_batch_pack(&batch, s->svc->token);
	ic_nng_open(&client, s->svc->nng_url, IC_TIMEOUT_MS);
	cr_assert_eq(ic_nng_call(&client, req.data, req.len, &s->ack), 0);
	ic_nng_close(&client);
	ic_bytes_free(&req);
	ic_batch_free(&batch);
	return (NULL);
}

Test(ingest_group,
     waiting_batches_share_a_transaction_and_a_bad_one_fails_alone)
{
	const char *env[] = {"POND_INGEST_STORE_JOBS=1", NULL};
	ic_service svc;
	enum { SENDERS = 5 };
	sender s[SENDERS];
	pthread_t t[SENDERS];

	ic_start(&svc, "ingest-group", env);
	/* 'slow' holds its transaction for a second; 'boom' fails at
	 * COMMIT (a deferred constraint trigger). */
	pond_test_sql_exec(
	        svc.dsn,
	        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
	        "$$ "
	        "BEGIN IF NEW.event_id = 'slow' THEN PERFORM pg_sleep(1); END "
	        "IF; RETURN NEW; END $$; "
	        "CREATE TRIGGER slow BEFORE INSERT ON events FOR EACH ROW "
	        "EXECUTE FUNCTION slow(); "
	        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
	        "$$ "
	        "BEGIN IF NEW.event_id = 'boom' THEN RAISE EXCEPTION 'boom'; "
	        "END IF; RETURN NULL; END $$; "
	        "CREATE CONSTRAINT TRIGGER boom AFTER INSERT ON events "
	        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "
	        "boom()");
	double groups0 = ic_metric(&svc, "pond_ingest_groups_total");
	double batches0 = ic_metric(&svc, "pond_ingest_grouped_batches_total");

	s[0] = (sender){.svc = &svc, .index = 0};
	pthread_create(&t[0], NULL, send_batch, &s[0]);
	usleep(300 * 1000); /* the slow batch is in the store now */
	for (int i = 1; i < SENDERS; i++) {
		s[i] = (sender){.svc = &svc, .index = i};
		pthread_create(&t[i], NULL, send_batch, &s[i]);
	}
	for (int i = 0; i < SENDERS; i++) {
		pthread_join(t[i], NULL);
	}

	/* The slow batch and every batch but the one holding 'boom' are in;
	 * that one is refused whole, nothing of it stored. */
	for (int i = 0; i < SENDERS; i++) {
		const Pond__IngestAck *ack = s[i].ack;
		if (i == 1) {
			cr_assert_not_null(ack->batch_error);
			cr_assert_str_eq(ack->batch_error->code,
			                 "unavailable");
			cr_assert_eq(ack->n_results, 0);
			continue;
		}
		cr_assert_null(ack->batch_error, "batch %d: %s", i,
		               ack->batch_error ? ack->batch_error->code : "");
		cr_assert_eq(ack->n_results, PER_BATCH);
		for (size_t k = 0; k < ack->n_results; k++) {
			cr_assert_str_eq(ack->results[k]->status, "accepted");
		}
	}
	cr_assert_eq(pond_test_sql_int(svc.dsn, "SELECT count(*) FROM events"),
	             (SENDERS - 1) * PER_BATCH);
	cr_assert_eq(pond_test_sql_int(svc.dsn, "SELECT count(*) FROM events "
	                                        "WHERE event_id LIKE 'b1-%'"),
	             0);
	/* Four batches queued behind the slow one: at least one transaction
	 * settled more than one batch. */
	double groups = ic_metric(&svc, "pond_ingest_groups_total") - groups0;
	double batches = ic_metric(&svc, "pond_ingest_grouped_batches_total") -
	                 batches0;
	cr_assert_eq(batches, SENDERS, "batches settled: %.0f", batches);
	cr_assert_lt(groups, batches, "groups %.0f, batches %.0f", groups,
	             batches);
	for (int i = 0; i < SENDERS; i++) {
		ic_ack_free(s[i].ack);
	}
	cr_assert_eq(ic_stop(&svc), 0);
}
