/* calc_int.h - between the calculator actor (calculator.c) and its work
 * on the offload threads (calc_run.c). */
#ifndef MX_CALC_INT_H
#define MX_CALC_INT_H

#include "mx_calculator.h"

/* mx__calc_run - an mx_offload_fn: run the job (arg), return the
 * exp_calc_done message carrying it, or NULL (the job stays the caller's)
 * when that message cannot be made. Offload threads only. */
struct mx_msg *mx__calc_run(void *arg);

/* mx__calc_thread_fini - free the calling thread's parser and calculator
 * context (also done automatically at thread exit). */
void mx__calc_thread_fini(void);

#endif
