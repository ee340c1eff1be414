/*
 * handoff.c - the thread-to-loop task queue (see handoff.h).
 */
#include "handoff.h"

#include <stddef.h>

static void
handoff_drain(uv_async_t *async)
{
	pond_handoff *h = (pond_handoff *)async->data;
	pond_task *t;

	pthread_mutex_lock(&h->mu);
	t = h->head;
	h->head = h->tail = NULL;
	pthread_mutex_unlock(&h->mu);

	while (t != NULL) {
		pond_task *next = t->next;
		t->next = NULL;
		t->fn(t);
		t = next;
	}
}

int
pond_handoff_init(pond_handoff *h, uv_loop_t *loop)
{
	h->head = h->tail = NULL;
	h->closed = NULL;
	if (pthread_mutex_init(&h->mu, NULL) != 0) {
		return (POND_ENOMEM);
	}
	if (uv_async_init(loop, &h->async, handoff_drain) != 0) {
		pthread_mutex_destroy(&h->mu);
		return (POND_EIO);
	}
	h->async.data = h;
	return (POND_OK);
}

void
pond_handoff_post(pond_handoff *h, pond_task *task, pond_task_fn fn)
{
	task->fn = fn;
	task->next = NULL;
	pthread_mutex_lock(&h->mu);
	if (h->tail != NULL) {
		h->tail->next = task;
	} else {
		h->head = task;
	}
	h->tail = task;
	pthread_mutex_unlock(&h->mu);
	uv_async_send(&h->async);
}

static void
handoff_closed(uv_handle_t *handle)
{
	pond_handoff *h = (pond_handoff *)handle->data;

	pthread_mutex_destroy(&h->mu);
	if (h->closed != NULL) {
		h->closed(h);
	}
}

void
pond_handoff_close(pond_handoff *h, void (*closed)(pond_handoff *))
{
	handoff_drain(&h->async);
	h->closed = closed;
	uv_close((uv_handle_t *)&h->async, handoff_closed);
}
