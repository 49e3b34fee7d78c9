/* dtype names, sizes, element load/store as double, and half-precision conversion. */
#include "core/dama_internal.h"
#include <math.h>

static const char *const names[DAMA_NUM_DTYPES] = {"f32", "f64", "bf16", "f16", "u8", "u16", "i32", "i64"};
static const int sizes[DAMA_NUM_DTYPES] = {4, 8, 2, 2, 1, 2, 4, 8};

const char *dama_dtype_name(dama_dtype t) {
  return (unsigned)t < DAMA_NUM_DTYPES ? names[t] : "invalid";
}

int dama_dtype_size(dama_dtype t) { return (unsigned)t < DAMA_NUM_DTYPES ? sizes[t] : 0; }

int dama_dtype_is_float(dama_dtype t) {
  return t == DAMA_F32 || t == DAMA_F64 || t == DAMA_BF16 || t == DAMA_F16;
}

dama_status dama_dtype_parse(const char *name, dama_dtype *out) {
  static const struct { const char *name; dama_dtype t; } aliases[] = {
      {"f32", DAMA_F32},   {"float32", DAMA_F32}, {"float", DAMA_F32},    {"f64", DAMA_F64},
      {"float64", DAMA_F64}, {"double", DAMA_F64}, {"bf16", DAMA_BF16},   {"bfloat16", DAMA_BF16},
      {"f16", DAMA_F16},   {"float16", DAMA_F16}, {"half", DAMA_F16},     {"u8", DAMA_U8},
      {"uint8", DAMA_U8},  {"byte", DAMA_U8},     {"bool", DAMA_U8},      {"u16", DAMA_U16},
      {"uint16", DAMA_U16}, {"i32", DAMA_I32},    {"int32", DAMA_I32},    {"int", DAMA_I32},
      {"i64", DAMA_I64},   {"int64", DAMA_I64},   {"long", DAMA_I64},
  };
  if (!name) return dama_error(DAMA_ERR_ARG, "dtype: expected a name, got NULL");
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strcmp(aliases[i].name, name) == 0) { *out = aliases[i].t; return DAMA_OK; }
  return dama_error(DAMA_ERR_ARG,
                    "dtype: unknown dtype '%s' (expected one of f32, f64, bf16, f16, u8, u16, i32, i64)", name);
}

float dama_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) bits = sign;
    else { /* subnormal: value = mant * 2^-24 */
      float v = (float)mant * 5.9604644775390625e-8f;
      return sign ? -v : v;
    }
  } else if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);
  else bits = sign | ((exp + 112) << 23) | (mant << 13);
  union { uint32_t u; float f; } v; v.u = bits; return v.f;
}

uint16_t dama_f32_to_f16(float f) {
  union { uint32_t u; float f; } v; v.f = f;
  uint32_t sign = (v.u >> 16) & 0x8000u, a = v.u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);           /* NaN */
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          /* overflow to Inf (>= 65520) */
  if (a < 0x38800000u) {                                            /* subnormal or zero */
    float af; union { uint32_t u; float f; } w; w.u = a; af = w.f;
    return (uint16_t)(sign | (uint32_t)lrintf(af * 16777216.0f));   /* round to nearest even */
  }
  uint32_t r = a + 0xc8000fffu + ((a >> 13) & 1u);                  /* rebias exponent, round to even */
  return (uint16_t)(sign | (r >> 13));
}

double dama_load_f64(const void *base, int64_t i, dama_dtype t) {
  switch (t) {
    case DAMA_F32: return ((const float *)base)[i];
    case DAMA_F64: return ((const double *)base)[i];
    case DAMA_BF16: return dama_bf16_to_f32(((const uint16_t *)base)[i]);
    case DAMA_F16: return dama_f16_to_f32(((const uint16_t *)base)[i]);
    case DAMA_U8: return ((const uint8_t *)base)[i];
    case DAMA_U16: return ((const uint16_t *)base)[i];
    case DAMA_I32: return ((const int32_t *)base)[i];
    case DAMA_I64: return (double)((const int64_t *)base)[i];
    default: return NAN;
  }
}

/* Integer stores truncate toward zero like a C cast (torch does the same); NaN stores 0. */
static int64_t to_int(double v) { return isnan(v) ? 0 : (int64_t)v; }

void dama_store_f64(void *base, int64_t i, dama_dtype t, double v) {
  switch (t) {
    case DAMA_F32: ((float *)base)[i] = (float)v; break;
    case DAMA_F64: ((double *)base)[i] = v; break;
    case DAMA_BF16: ((uint16_t *)base)[i] = dama_f32_to_bf16((float)v); break;
    case DAMA_F16: ((uint16_t *)base)[i] = dama_f32_to_f16((float)v); break;
    case DAMA_U8: ((uint8_t *)base)[i] = (uint8_t)to_int(v); break;
    case DAMA_U16: ((uint16_t *)base)[i] = (uint16_t)to_int(v); break;
    case DAMA_I32: ((int32_t *)base)[i] = (int32_t)to_int(v); break;
    case DAMA_I64: ((int64_t *)base)[i] = to_int(v); break;
    default: break;
  }
}
