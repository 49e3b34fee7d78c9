/* Thread-local error messages, status names, and the Ctrl-C interrupt flag. */
#include "core/dama_internal.h"
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];
static volatile sig_atomic_t interrupt_flag;

const char *dama_last_error(void) { return last_error; }

void dama_clear_error(void) { last_error[0] = '\0'; }

dama_status dama_error(dama_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return s;
}

const char *dama_status_name(dama_status s) {
  switch (s) {
    case DAMA_OK: return "ok";
    case DAMA_ERR_ARG: return "argument error";
    case DAMA_ERR_SHAPE: return "shape error";
    case DAMA_ERR_DTYPE: return "dtype error";
    case DAMA_ERR_INDEX: return "index error";
    case DAMA_ERR_OOM: return "out of memory";
    case DAMA_ERR_IO: return "I/O error";
    case DAMA_ERR_FORMAT: return "format error";
    case DAMA_ERR_INTERRUPTED: return "interrupted";
    case DAMA_ERR_NUMERIC: return "numeric error";
    case DAMA_ERR_DEVICE: return "device error";
    case DAMA_ERR_UNSUPPORTED: return "unsupported";
    case DAMA_ERR_INTERNAL: return "internal error";
  }
  return "unknown error";
}

/* Async-signal-safe: only writes a sig_atomic_t. */
void dama_interrupt_request(void) { interrupt_flag = 1; }
int dama_interrupt_pending(void) { return interrupt_flag != 0; }
void dama_interrupt_clear(void) { interrupt_flag = 0; }
