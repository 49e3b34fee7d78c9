/* Patches: MAE's patchify/unpatchify (channel-fastest patch vectors, the norm-pix target), the patch
 * embedding conv as im2col + GEMM (conv weight order (c, i, j)), and the fixed 2-D sin-cos position table. */
#include "core/dama_internal.h"
#include <math.h>

static dama_status check_img(const char *fn, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p) {
  DAMA_CHECK(N > 0 && C > 0 && H > 0 && W > 0 && p > 0, DAMA_ERR_ARG,
             "%s: sizes must be positive, got N=%lld C=%lld H=%lld W=%lld p=%lld", fn, (long long)N, (long long)C,
             (long long)H, (long long)W, (long long)p);
  DAMA_CHECK(H % p == 0 && W % p == 0, DAMA_ERR_ARG, "%s: H=%lld and W=%lld must be multiples of the patch size %lld",
             fn, (long long)H, (long long)W, (long long)p);
  return DAMA_OK;
}

dama_status dama_patchify(float *patches, const float *imgs, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p) {
  DAMA_TRY(check_img("patchify", N, C, H, W, p));
  DAMA_CHECK(patches && imgs, DAMA_ERR_ARG, "patchify: patches and imgs must not be NULL");
  const int64_t gh = H / p, gw = W / p, P = p * p * C;
#pragma omp parallel for schedule(static)
  for (int64_t ny = 0; ny < N * gh; ny++) {
    const int64_t n = ny / gh, gy = ny % gh;
    for (int64_t gx = 0; gx < gw; gx++) {
      float *dst = patches + (n * gh * gw + gy * gw + gx) * P;
      for (int64_t c = 0; c < C; c++) {
        const float *src = imgs + ((n * C + c) * H + gy * p) * W + gx * p;
        for (int64_t i = 0; i < p; i++)
          for (int64_t j = 0; j < p; j++) dst[(i * p + j) * C + c] = src[i * W + j];
      }
    }
  }
  return DAMA_OK;
}

dama_status dama_unpatchify(float *imgs, const float *patches, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p) {
  DAMA_TRY(check_img("unpatchify", N, C, H, W, p));
  DAMA_CHECK(patches && imgs, DAMA_ERR_ARG, "unpatchify: imgs and patches must not be NULL");
  const int64_t gh = H / p, gw = W / p, P = p * p * C;
#pragma omp parallel for schedule(static)
  for (int64_t ny = 0; ny < N * gh; ny++) {
    const int64_t n = ny / gh, gy = ny % gh;
    for (int64_t gx = 0; gx < gw; gx++) {
      const float *src = patches + (n * gh * gw + gy * gw + gx) * P;
      for (int64_t c = 0; c < C; c++) {
        float *dst = imgs + ((n * C + c) * H + gy * p) * W + gx * p;
        for (int64_t i = 0; i < p; i++)
          for (int64_t j = 0; j < p; j++) dst[i * W + j] = src[(i * p + j) * C + c];
      }
    }
  }
  return DAMA_OK;
}

/* col[N*L, C*p*p] (c, i, j order) from imgs; add != 0: imgs += col2im(col) instead. */
static void im2col(float *col, float *imgs, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, int add) {
  const int64_t gh = H / p, gw = W / p, K = C * p * p;
#pragma omp parallel for schedule(static)
  for (int64_t ny = 0; ny < N * gh; ny++) {
    const int64_t n = ny / gh, gy = ny % gh;
    for (int64_t gx = 0; gx < gw; gx++) {
      float *row = col + (n * gh * gw + gy * gw + gx) * K;
      for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < p; i++) {
          float *img = imgs + ((n * C + c) * H + gy * p + i) * W + gx * p;
          float *r = row + (c * p + i) * p;
          if (add) {
            for (int64_t j = 0; j < p; j++) img[j] += r[j];
          } else {
            memcpy(r, img, (size_t)p * sizeof(float));
          }
        }
    }
  }
}

dama_status dama_patch_embed_forward(float *out, float *col, const float *imgs, const float *weight, const float *bias,
                                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, int64_t D) {
  DAMA_TRY(check_img("patch_embed_forward", N, C, H, W, p));
  DAMA_CHECK(D > 0, DAMA_ERR_ARG, "patch_embed_forward: D must be positive, got %lld", (long long)D);
  DAMA_CHECK(out && col && imgs && weight, DAMA_ERR_ARG,
             "patch_embed_forward: out, col, imgs and weight must not be NULL");
  im2col(col, (float *)imgs, N, C, H, W, p, 0); /* reads imgs only */
  const int64_t L = (H / p) * (W / p);
  return dama_linear_forward(out, col, weight, bias, N * L, C * p * p, D);
}

dama_status dama_patch_embed_backward(float *dimgs, float *dweight, float *dbias, const float *dout, const float *col,
                                      const float *weight, float *scratch, int64_t N, int64_t C, int64_t H, int64_t W,
                                      int64_t p, int64_t D) {
  DAMA_TRY(check_img("patch_embed_backward", N, C, H, W, p));
  DAMA_CHECK(D > 0, DAMA_ERR_ARG, "patch_embed_backward: D must be positive, got %lld", (long long)D);
  DAMA_CHECK(dout, DAMA_ERR_ARG, "patch_embed_backward: dout must not be NULL");
  DAMA_CHECK(!dweight || col, DAMA_ERR_ARG, "patch_embed_backward: dweight needs col");
  DAMA_CHECK(!dimgs || (weight && scratch), DAMA_ERR_ARG, "patch_embed_backward: dimgs needs weight and scratch");
  const int64_t L = (H / p) * (W / p), K = C * p * p;
  DAMA_TRY(dama_linear_backward(NULL, dweight, dbias, dout, col, weight, N * L, K, D));
  if (dimgs) {
    memset(scratch, 0, (size_t)(N * L * K) * sizeof(float));
    DAMA_TRY(dama_linear_backward(scratch, NULL, NULL, dout, NULL, weight, N * L, K, D));
    im2col(scratch, dimgs, N, C, H, W, p, 1);
  }
  return DAMA_OK;
}

dama_status dama_pos_embed_2d_sincos(float *out, int64_t D, int64_t grid_h, int64_t grid_w, int cls) {
  DAMA_CHECK(D > 0 && grid_h > 0 && grid_w > 0, DAMA_ERR_ARG,
             "pos_embed_2d_sincos: sizes must be positive, got D=%lld grid %lldx%lld", (long long)D,
             (long long)grid_h, (long long)grid_w);
  DAMA_CHECK(D % 4 == 0, DAMA_ERR_ARG, "pos_embed_2d_sincos: D=%lld must be a multiple of 4", (long long)D);
  DAMA_CHECK(out, DAMA_ERR_ARG, "pos_embed_2d_sincos: out must not be NULL");
  const int64_t F = D / 4;
  if (cls) {
    memset(out, 0, (size_t)D * sizeof(float));
    out += D;
  }
  for (int64_t r = 0; r < grid_h; r++)
    for (int64_t c = 0; c < grid_w; c++) {
      float *e = out + (r * grid_w + c) * D;
      for (int64_t k = 0; k < F; k++) {
        double omega = 1.0 / pow(10000.0, (double)k / (double)F);
        e[k] = (float)sin((double)c * omega);
        e[F + k] = (float)cos((double)c * omega);
        e[2 * F + k] = (float)sin((double)r * omega);
        e[3 * F + k] = (float)cos((double)r * omega);
      }
    }
  return DAMA_OK;
}
