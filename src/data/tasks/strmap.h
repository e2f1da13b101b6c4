/* A small open-addressing map from NUL-terminated strings to size_t, used to
 * keep train and eval prompts disjoint and to group examples by prompt. Keys
 * are borrowed, not copied: they must outlive the map. */
#ifndef GKD_TASKS_STRMAP_H
#define GKD_TASKS_STRMAP_H

#include <stddef.h>

typedef struct {
    const char **keys; /* (cap) NULL = empty slot */
    size_t *vals;      /* (cap) */
    size_t cap, n;     /* cap is a power of two */
} strmap;

void strmap_init(strmap *m);
void strmap_free(strmap *m);
/** Pointer to the value of key, or NULL if absent. */
size_t *strmap_get(const strmap *m, const char *key);
/** Insert key with val unless present; *found says whether it was present.
 *  Returns 0 or GKD_ENOMEM. */
int strmap_put(strmap *m, const char *key, size_t val, int *found);

#endif
