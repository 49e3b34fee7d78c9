/* Runner for DAMA_TEST cases: runs all (or those whose name contains argv[1]), prints a summary. */
#include "dama_test.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TESTS 1024
static struct { const char *name; dama_test_fn fn; } tests[MAX_TESTS];
static int n_tests;
static int cur_failed, cur_skipped;

void dama_test_register(const char *name, dama_test_fn fn) {
  if (n_tests < MAX_TESTS) { tests[n_tests].name = name; tests[n_tests].fn = fn; n_tests++; }
}

void dama_test_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "  %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  cur_failed = 1;
}

void dama_test_skip(const char *why) {
  fprintf(stderr, "  skipped: %s\n", why);
  cur_skipped = 1;
}

int dama_test_failed_now(void) { return cur_failed; }

int main(int argc, char **argv) {
  int passed = 0, failed = 0, skipped = 0;
  for (int i = 0; i < n_tests; i++) {
    if (argc > 1 && !strstr(tests[i].name, argv[1])) continue;
    cur_failed = cur_skipped = 0;
    dama_clear_error();
    tests[i].fn();
    int64_t in_use = 0, peak = 0, n_live = 0;
    dama_memory_stats(&in_use, &peak, &n_live);
    (void)in_use; (void)peak;
    const char *verdict = cur_failed ? "FAIL" : cur_skipped ? "SKIP" : "ok";
    printf("%-4s %s\n", verdict, tests[i].name);
    if (cur_failed) failed++; else if (cur_skipped) skipped++; else passed++;
  }
  printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  if (failed) return 1;
  if (skipped && !passed) return 77;
  return 0;
}
