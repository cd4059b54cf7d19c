/* mx_list.h - one intrusive doubly linked list, header-only.
 *
 * A list is a circular chain through a head (struct mx_list) that is not an
 * element, as in Linux's list.h: insertion and removal are O(1), need no
 * special case for the first or last element and cannot fail, and an
 * element may sit in several lists through several members. The list owns
 * nothing: elements are allocated and freed by their owner, which must
 * remove an element before freeing it. Not thread-safe: a list belongs to
 * the one thread that owns the structure holding its head (say which, next
 * to the head). Counts, when wanted, are kept beside the head by the owner.
 */
#ifndef MX_LIST_H
#define MX_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct mx_list {
    struct mx_list *prev, *next;
};

/* MX_LIST_INIT - static initialiser of an empty list named name. */
#define MX_LIST_INIT(name)                                                                         \
    {                                                                                              \
        &(name), &(name)                                                                           \
    }

/* mx_list_init - make l an empty list (a head), or mark an element as in no
 * list. A zeroed (calloc'd) element is also "in no list" for
 * mx_list_linked; a zeroed head is not a list until initialised. */
static inline void mx_list_init(struct mx_list *l)
{
    l->prev = l->next = l;
}

/* mx_list_empty - whether the list headed by l has no elements. */
static inline bool mx_list_empty(const struct mx_list *l)
{
    return l->next == l;
}

/* mx_list_linked - whether element n is in a list (n initialised or zeroed). */
static inline bool mx_list_linked(const struct mx_list *n)
{
    return n->next && n->next != n;
}

/* mx_list_insert_after - put n right after pos (a head or an element). */
static inline void mx_list_insert_after(struct mx_list *pos, struct mx_list *n)
{
    n->prev = pos;
    n->next = pos->next;
    pos->next->prev = n;
    pos->next = n;
}

/* mx_list_push_back / mx_list_push_front - append or prepend n to l. */
static inline void mx_list_push_back(struct mx_list *l, struct mx_list *n)
{
    mx_list_insert_after(l->prev, n);
}

static inline void mx_list_push_front(struct mx_list *l, struct mx_list *n)
{
    mx_list_insert_after(l, n);
}

/* mx_list_remove - take n out of its list and mark it as in none, so a
 * second remove is harmless. n must be linked or initialised. */
static inline void mx_list_remove(struct mx_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    mx_list_init(n);
}

/* mx_list_entry - the structure of type holding node as member. */
#define mx_list_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

/* mx_list_first / mx_list_last - the first or last element of l, typed;
 * NULL when l is empty. */
#define mx_list_first(l, type, member)                                                             \
    (mx_list_empty(l) ? (type *)NULL : mx_list_entry((l)->next, type, member))
#define mx_list_last(l, type, member)                                                              \
    (mx_list_empty(l) ? (type *)NULL : mx_list_entry((l)->prev, type, member))

/* mx_list_next / mx_list_prev - the element after or before e in the list
 * headed by l; NULL at the end. */
#define mx_list_next(l, e, member)                                                                 \
    ((e)->member.next == (l) ? (__typeof__(e))NULL                                                 \
                             : mx_list_entry((e)->member.next, __typeof__(*(e)), member))
#define mx_list_prev(l, e, member)                                                                 \
    ((e)->member.prev == (l) ? (__typeof__(e))NULL                                                 \
                             : mx_list_entry((e)->member.prev, __typeof__(*(e)), member))

/* mx_list_each - for each element e of l, front to back; e must not be
 * removed in the body (use mx_list_each_safe). */
#define mx_list_each(e, l, member)                                                                 \
    for ((e) = mx_list_entry((l)->next, __typeof__(*(e)), member); &(e)->member != (l);            \
         (e) = mx_list_entry((e)->member.next, __typeof__(*(e)), member))

/* mx_list_each_safe - as mx_list_each, but the body may remove (and free)
 * e; tmp holds the next element. */
#define mx_list_each_safe(e, tmp, l, member)                                                       \
    for ((e) = mx_list_entry((l)->next, __typeof__(*(e)), member),                                 \
        (tmp) = mx_list_entry((e)->member.next, __typeof__(*(e)), member);                         \
         &(e)->member != (l);                                                                      \
         (e) = (tmp), (tmp) = mx_list_entry((e)->member.next, __typeof__(*(e)), member))

#endif
