/* mx_mpsc.h - intrusive lock-free multi-producer single-consumer queue.
 *
 * Dmitry Vyukov's non-blocking MPSC node queue (the one Pony's runtime uses
 * for mailboxes): a push is one atomic exchange plus one store and never
 * blocks or fails; only the owning thread pops. While a push is half done
 * (exchange made, link not yet stored) pop may return NULL although the
 * queue is not empty; callers that count items (the actor depth counter)
 * treat that as "try again on the next turn".
 */
#ifndef MX_MPSC_H
#define MX_MPSC_H

#include <stdatomic.h>
#include <stddef.h>

struct mx_mnode {
    _Atomic(struct mx_mnode *) next;
};

/* Producers' end and consumer's end are kept by the embedding struct so it
 * can place them on different cache lines. */

/* mx_mpsc_init - empty queue whose stub node is *stub. Owner thread. */
static inline void mx_mpsc_init(_Atomic(struct mx_mnode *) *head, struct mx_mnode **tail,
                                struct mx_mnode *stub)
{
    atomic_store_explicit(&stub->next, NULL, memory_order_relaxed);
    atomic_store_explicit(head, stub, memory_order_relaxed);
    *tail = stub;
}

/* mx_mpsc_push - append n. Any thread; never blocks. */
static inline void mx_mpsc_push(_Atomic(struct mx_mnode *) *head, struct mx_mnode *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* acq_rel: publishes n's contents to the consumer that follows prev->next,
     * and orders us after the previous producer's exchange */
    struct mx_mnode *prev = atomic_exchange_explicit(head, n, memory_order_acq_rel);
    /* release: the consumer's acquire load of next sees n fully written */
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/* mx_mpsc_pop - remove the oldest node, or NULL when empty or a push is in
 * progress. Owner thread only. */
static inline struct mx_mnode *mx_mpsc_pop(_Atomic(struct mx_mnode *) *head,
                                           struct mx_mnode **tailp, struct mx_mnode *stub)
{
    struct mx_mnode *tail = *tailp;
    /* acquire: pairs with the producer's release store of next */
    struct mx_mnode *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == stub) {
        if (!next)
            return NULL;
        *tailp = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        *tailp = next;
        return tail;
    }
    /* acquire: see whether a producer has moved head past tail */
    if (tail != atomic_load_explicit(head, memory_order_acquire))
        return NULL; /* a push is half done */
    mx_mpsc_push(head, stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        *tailp = next;
        return tail;
    }
    return NULL;
}

/* mx_mpsc_peek - the oldest node without removing it, or NULL. Owner thread. */
static inline struct mx_mnode *mx_mpsc_peek(struct mx_mnode *tail, struct mx_mnode *stub)
{
    if (tail != stub)
        return tail;
    return atomic_load_explicit(&stub->next, memory_order_acquire);
}

#endif
