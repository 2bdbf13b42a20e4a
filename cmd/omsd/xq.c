/* xq.c — the hand-over to a service thread: other threads (fan-out, the
 * resume reader, Kafka's delivery reports, other service threads) push
 * items on a thread's queue and wake its loop; the thread hands each item
 * to the handler its kind has (omsd_xq_handle) and each live event to the
 * listeners (omsd_xq_on_event: the dialects). Also the positions each
 * thread has dispatched up to. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

static omsd_xq_handler handlers[XQ_SSTORE + 1];
#define MAX_LISTENERS 4
static omsd_event_listener listeners[MAX_LISTENERS];
static int nlisteners;

void omsd_xq_handle(omsd_xq_kind kind, omsd_xq_handler fn)
{
    handlers[kind] = fn;
}

void omsd_xq_on_event(omsd_event_listener fn)
{
    for (int i = 0; i < nlisteners; i++)
        if (listeners[i] == fn)
            return; /* once, however many times the server starts */
    if (nlisteners < MAX_LISTENERS)
        listeners[nlisteners++] = fn;
}

void omsd_xq_push(omsd_worker *w, omsd_xq_item *it)
{
    pthread_mutex_lock(&w->xq_lock);
    bool was_empty = w->xq_head == NULL;
    if (w->xq_tail)
        w->xq_tail->next = it;
    else
        w->xq_head = it;
    w->xq_tail = it;
    w->xq_len++;
    pthread_mutex_unlock(&w->xq_lock);
    /* the service thread empties the whole queue when it wakes, so one
     * wake-up per batch is enough */
    if (was_empty && w->ctx)
        lws_cancel_service(w->ctx);
}

omsd_worker *omsd_request_worker(omsd *d, uint64_t request_id)
{
    int i = (int)(request_id & 0xff);
    return i < d->nworkers ? &d->workers[i] : &d->workers[0];
}

size_t omsd_nconns(omsd *d)
{
    size_t n = 0;
    for (int i = 0; i < d->nworkers; i++)
        n += atomic_load(&d->workers[i].nconns);
    return n;
}

/* ---- positions and presence ------------------------------------------------------- */

json_t *omsd_positions(omsd *d, oms_topic_kind kind)
{
    json_t *a = json_array();
    for (int p = 0; p < d->nparts[kind]; p++) {
        char pos[300];
        snprintf(pos, sizeof pos, "%s:%d:%" PRId64, d->topics[kind], p,
                 omsd_self->last_offset[kind][p]);
        json_array_append_new(a, json_string(pos));
    }
    return a;
}


static void dispatch_event(omsd_worker *w, omsd_xq_item *it)
{
    omsd *d = w->d;
    if (it->partition >= 0 && it->partition < d->nparts[it->topic] &&
        it->offset > w->last_offset[it->topic][it->partition])
        w->last_offset[it->topic][it->partition] = it->offset;
    for (int i = 0; i < nlisteners; i++)
        listeners[i](w, it);
}

/* Items dispatched per wake-up. Dispatching a whole backlog at once would
 * let no socket be written meanwhile: every queue, a fast reader's too,
 * would fill to its bound during a burst. */
#define XQ_BATCH 128

void omsd_xq_drain(omsd_worker *w, bool dispatch)
{
    pthread_mutex_lock(&w->xq_lock);
    omsd_xq_item *it = w->xq_head, *last = NULL;
    size_t n = 0;
    for (omsd_xq_item *p = it; p && (!dispatch || n < XQ_BATCH); p = p->next, n++)
        last = p;
    if (last) {
        w->xq_head = last->next;
        last->next = NULL;
        if (!w->xq_head)
            w->xq_tail = NULL;
        w->xq_len -= n;
    }
    bool more = w->xq_head != NULL;
    pthread_mutex_unlock(&w->xq_lock);
    while (it) {
        omsd_xq_item *next = it->next;
        if (it->kind == XQ_EVENT) {
            if (dispatch)
                dispatch_event(w, it);
            omsd_frame_unref(it->frame);
        } else if (handlers[it->kind]) {
            handlers[it->kind](w, it, dispatch); /* frees what it carries */
        }
        free(it);
        it = next;
    }
    /* come back for the rest after the sockets had their turn */
    if (more && dispatch && w->ctx)
        lws_cancel_service(w->ctx);
    if (more && !dispatch)
        omsd_xq_drain(w, false);
}

size_t omsd_xq_backlog(omsd *d)
{
    size_t most = 0;
    for (int i = 0; i < d->nworkers; i++) {
        omsd_worker *w = &d->workers[i];
        pthread_mutex_lock(&w->xq_lock);
        if (w->xq_len > most)
            most = w->xq_len;
        pthread_mutex_unlock(&w->xq_lock);
    }
    return most;
}


void omsd_xq_drain_now(void)
{
    omsd_xq_drain(omsd_self, true);
}
