/* Thread count for the runtime's OpenMP kernels and for BLAS. */
#include "core/dama_internal.h"
#include <cblas.h>
#include <omp.h>

void dama_set_num_threads(int n) {
  if (n < 1) n = 1;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int dama_get_num_threads(void) { return omp_get_max_threads(); }
