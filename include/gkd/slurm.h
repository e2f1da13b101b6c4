/* Running the cells of a grid as a Slurm job array: one array task per cell,
 * each running `gkd run exp.yaml --cell $SLURM_ARRAY_TASK_ID`. The script is
 * written to results/<exp>/slurm/array.sbatch, submitted with
 * `sbatch --parsable`, and the job id appended to results/<exp>/slurm/jobs.txt.
 * Task output goes to results/<exp>/slurm/<jobid>_<task>.out. */
#ifndef GKD_SLURM_H
#define GKD_SLURM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *partition; /* NULL: the cluster's default partition */
    const char *time;      /* time limit per task, Slurm syntax ("HH:MM:SS", "D-HH:MM:SS") */
    int cpus_per_task;     /* also OMP_NUM_THREADS of each task */
    const char *mem;       /* memory per task ("4G", "500M"); NULL: cluster default */
    int max_parallel;      /* at most this many tasks at once (`%N`); 0: no limit */
} gkd_slurm_options;

#define GKD_SLURM_OPTIONS_INIT {NULL, "01:00:00", 1, NULL, 0}

/** Check the options (formats Slurm accepts, no characters that would break
 *  an #SBATCH line). */
int gkd_slurm_options_check(const gkd_slurm_options *opt);

/** The command of each array task for the `gkd` program:
 *  `OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK <gkd_bin> run <exp_yaml> --cell
 *  $SLURM_ARRAY_TASK_ID [--results <results_root>]` with both paths made
 *  absolute (they must exist) and shell-quoted where needed. gkd_bin NULL
 *  means the running program (/proc/self/exe); results_root may be NULL.
 *  *out is malloc'd. */
int gkd_slurm_gkd_command(char **out, const char *gkd_bin, const char *exp_yaml,
                          const char *results_root);

/** Text of the sbatch script for `ncells` array tasks of experiment
 *  `exp_name` whose results directory is `exp_dir` (made absolute; output
 *  files go to <exp_dir>/slurm/%A_%a.out). `command` is the script body run
 *  by every task (e.g. from gkd_slurm_gkd_command()). *out is malloc'd. */
int gkd_slurm_script(char **out, const char *exp_name, const char *exp_dir, int ncells,
                     const gkd_slurm_options *opt, const char *command);

/** gkd_slurm_script() written atomically to <exp_dir>/slurm/array.sbatch
 *  (directories created). The path written goes to path_out if not NULL. */
int gkd_slurm_write_script(char *path_out, size_t path_cap, const char *exp_name,
                           const char *exp_dir, int ncells, const gkd_slurm_options *opt,
                           const char *command);

/** Submit <exp_dir>/slurm/array.sbatch with `sbatch --parsable` (found in
 *  PATH, run as a child process), put the job id in job_id, and append it
 *  to <exp_dir>/slurm/jobs.txt. The error message carries sbatch's stderr. */
int gkd_slurm_submit(char *job_id, size_t job_id_cap, const char *exp_dir);

/** gkd_slurm_write_script() followed by gkd_slurm_submit(). */
int gkd_slurm_run_array(char *job_id, size_t job_id_cap, const char *exp_name,
                        const char *exp_dir, int ncells, const gkd_slurm_options *opt,
                        const char *command);

/** The last job id in <exp_dir>/slurm/jobs.txt; "" if none was submitted. */
int gkd_slurm_last_job(char *job_id, size_t job_id_cap, const char *exp_dir);

typedef enum {
    GKD_SLURM_TASK_UNKNOWN = 0, /* not in the queue and no accounting record */
    GKD_SLURM_TASK_PENDING,
    GKD_SLURM_TASK_RUNNING,     /* also configuring, completing */
    GKD_SLURM_TASK_COMPLETED,   /* from sacct only */
    GKD_SLURM_TASK_FAILED       /* from sacct only: failed, cancelled, timeout, OOM, node fail */
} gkd_slurm_task_state;

/** "unknown", "pending", "running", "completed", "failed". */
const char *gkd_slurm_task_state_name(gkd_slurm_task_state s);

/** States of tasks 0..ntasks-1 of array job `job_id`: queued tasks from
 *  `squeue`, finished ones from `sacct` when accounting is enabled (it often
 *  is not: then they stay UNKNOWN, and the cell markers are the reliable
 *  source). Fails only if squeue cannot be run. */
int gkd_slurm_task_states(gkd_slurm_task_state *states, int ntasks, const char *job_id);

#ifdef __cplusplus
}
#endif

#endif
