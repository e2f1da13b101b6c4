/* Private to src/experiment: exclusive flock(2) locks on files of a results
 * tree, held by one process (a cell being run, a shared artifact being
 * built), across Slurm array tasks on a shared file system too. */
#ifndef GKD_RUN_LOCK_H
#define GKD_RUN_LOCK_H

typedef struct {
    int fd; /* -1: not held */
} run_lock;

#define RUN_LOCK_INIT {-1}

/** Wait for the lock on `path` (created if missing). */
int run_lock_acquire(run_lock *l, const char *path);
/** Like run_lock_acquire, but *busy = 1 (and no lock) if another process holds it. */
int run_lock_try(run_lock *l, const char *path, int *busy);
/** Release (a lock not held is left alone). */
void run_lock_release(run_lock *l);

#endif
