/*
 * handoff.h - run work on the libuv loop from any thread.
 *
 * NNG completes its aios on its own threads and the store pool runs jobs on
 * worker threads; the only libuv call such a thread may make is
 * uv_async_send. A pond_handoff is that one mechanism: other threads post
 * tasks into a mutex-guarded list and wake the loop; the loop drains the
 * list and runs each task. uv_async_send coalesces, so the loop drains
 * everything posted so far on each wake-up.
 */
#ifndef POND_HANDOFF_H
#define POND_HANDOFF_H

#include <pthread.h>
#include <uv.h>

#include "err.h"

typedef struct pond_task pond_task;

/* pond_task_fn runs on the loop thread. */
typedef void (*pond_task_fn)(pond_task *task);

/* pond_task is embedded in the caller's own struct (no allocation here). */
struct pond_task {
	pond_task *next;
	pond_task_fn fn;
};

typedef struct pond_handoff {
	uv_async_t async;
	pthread_mutex_t mu;
	pond_task *head; /* protected by mu */
	pond_task *tail; /* protected by mu */
	void (*closed)(struct pond_handoff *);
} pond_handoff;

/* pond_handoff_init sets up h on loop; h must stay put until closed. */
int pond_handoff_init(pond_handoff *h, uv_loop_t *loop) POND_MUSTCHECK;

/* pond_handoff_post queues task to run on the loop; callable from any
 * thread. The task must stay valid until its fn has run. */
void pond_handoff_post(pond_handoff *h, pond_task *task, pond_task_fn fn);

/* pond_handoff_close runs what is still queued, then closes the handle;
 * closed (may be NULL) runs from the close callback. */
void pond_handoff_close(pond_handoff *h, void (*closed)(pond_handoff *));

#endif
