/* proxy/list.h
 * An intrusive doubly-linked list: the node lives inside the listed object, so linking and
 * unlinking never allocate. An unlinked node points at itself. */
#ifndef PT_LIST_H
#define PT_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct pt_list {
    struct pt_list *prev, *next;
} pt_list_t;

#define PT_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void pt_list_init(pt_list_t *l)
{
    l->prev = l->next = l;
}

static inline bool pt_list_is_empty(const pt_list_t *l)
{
    return l->next == l;
}

static inline bool pt_list_is_linked(const pt_list_t *n)
{
    return n->next != n;
}

static inline void pt_list_insert_tail(pt_list_t *head, pt_list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void pt_list_insert_head(pt_list_t *head, pt_list_t *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

static inline void pt_list_remove(pt_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif
