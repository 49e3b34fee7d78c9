/* Tensor-level entries of the NN, loss, mask and optimizer kernels (runtime/api/nn_tensor.h): one device,
 * dtype, contiguity and size check per argument, then the device's kernel from its backend table. */
#include "core/backend.h"
#include "core/nn_tensor_args.h"

dama_status dama_nn_linear_forward(dama_tensor *out, const dama_tensor *inp, const dama_tensor *weight, const dama_tensor *bias, int64_t N, int64_t C, int64_t OC) {
  static const char op[] = "linear_forward";
  const dama_tensor *ts[4] = {out, inp, weight, bias};
  const char *ns[4] = {"out", "inp", "weight", "bias"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 4, ts, ns, &be));
  DAMA_NEED_OP(be, linear_forward, op, 4, ts);
  float *p_out;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(OC)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 2, d_, 0, (void **)&p_out)); }
  const float *p_inp;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "inp", inp, DAMA_F32, 2, d_, 0, (void **)&p_inp)); }
  const float *p_weight;
  { const int64_t d_[2] = {(int64_t)(OC), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "weight", weight, DAMA_F32, 2, d_, 0, (void **)&p_weight)); }
  const float *p_bias;
  { const int64_t d_[1] = {(int64_t)(OC)};
    DAMA_TRY(nn_arg(op, "bias", bias, DAMA_F32, 1, d_, 1, (void **)&p_bias)); }
  return be->ops->linear_forward(p_out, p_inp, p_weight, p_bias, N, C, OC);
}

dama_status dama_nn_linear_backward(dama_tensor *dinp, dama_tensor *dweight, dama_tensor *dbias, const dama_tensor *dout, const dama_tensor *inp, const dama_tensor *weight, int64_t N, int64_t C, int64_t OC) {
  static const char op[] = "linear_backward";
  const dama_tensor *ts[6] = {dinp, dweight, dbias, dout, inp, weight};
  const char *ns[6] = {"dinp", "dweight", "dbias", "dout", "inp", "weight"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 6, ts, ns, &be));
  DAMA_NEED_OP(be, linear_backward, op, 6, ts);
  float *p_dinp;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "dinp", dinp, DAMA_F32, 2, d_, 1, (void **)&p_dinp)); }
  float *p_dweight;
  { const int64_t d_[2] = {(int64_t)(OC), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "dweight", dweight, DAMA_F32, 2, d_, 1, (void **)&p_dweight)); }
  float *p_dbias;
  { const int64_t d_[1] = {(int64_t)(OC)};
    DAMA_TRY(nn_arg(op, "dbias", dbias, DAMA_F32, 1, d_, 1, (void **)&p_dbias)); }
  const float *p_dout;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(OC)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 2, d_, 0, (void **)&p_dout)); }
  const float *p_inp;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "inp", inp, DAMA_F32, 2, d_, 1, (void **)&p_inp)); }
  const float *p_weight;
  { const int64_t d_[2] = {(int64_t)(OC), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "weight", weight, DAMA_F32, 2, d_, 1, (void **)&p_weight)); }
  return be->ops->linear_backward(p_dinp, p_dweight, p_dbias, p_dout, p_inp, p_weight, N, C, OC);
}

dama_status dama_nn_layernorm_forward(dama_tensor *out, dama_tensor *mean, dama_tensor *rstd, const dama_tensor *inp, const dama_tensor *weight, const dama_tensor *bias, int64_t N, int64_t C, float eps) {
  static const char op[] = "layernorm_forward";
  const dama_tensor *ts[6] = {out, mean, rstd, inp, weight, bias};
  const char *ns[6] = {"out", "mean", "rstd", "inp", "weight", "bias"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 6, ts, ns, &be));
  DAMA_NEED_OP(be, layernorm_forward, op, 6, ts);
  float *p_out;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 2, d_, 0, (void **)&p_out)); }
  float *p_mean;
  { const int64_t d_[1] = {(int64_t)(N)};
    DAMA_TRY(nn_arg(op, "mean", mean, DAMA_F32, 1, d_, 1, (void **)&p_mean)); }
  float *p_rstd;
  { const int64_t d_[1] = {(int64_t)(N)};
    DAMA_TRY(nn_arg(op, "rstd", rstd, DAMA_F32, 1, d_, 1, (void **)&p_rstd)); }
  const float *p_inp;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "inp", inp, DAMA_F32, 2, d_, 0, (void **)&p_inp)); }
  const float *p_weight;
  { const int64_t d_[1] = {(int64_t)(C)};
    DAMA_TRY(nn_arg(op, "weight", weight, DAMA_F32, 1, d_, 1, (void **)&p_weight)); }
  const float *p_bias;
  { const int64_t d_[1] = {(int64_t)(C)};
    DAMA_TRY(nn_arg(op, "bias", bias, DAMA_F32, 1, d_, 1, (void **)&p_bias)); }
  return be->ops->layernorm_forward(p_out, p_mean, p_rstd, p_inp, p_weight, p_bias, N, C, eps);
}

dama_status dama_nn_layernorm_backward(dama_tensor *dinp, dama_tensor *dweight, dama_tensor *dbias, const dama_tensor *dout, const dama_tensor *inp, const dama_tensor *weight, const dama_tensor *mean, const dama_tensor *rstd, int64_t N, int64_t C) {
  static const char op[] = "layernorm_backward";
  const dama_tensor *ts[8] = {dinp, dweight, dbias, dout, inp, weight, mean, rstd};
  const char *ns[8] = {"dinp", "dweight", "dbias", "dout", "inp", "weight", "mean", "rstd"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 8, ts, ns, &be));
  DAMA_NEED_OP(be, layernorm_backward, op, 8, ts);
  float *p_dinp;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "dinp", dinp, DAMA_F32, 2, d_, 1, (void **)&p_dinp)); }
  float *p_dweight;
  { const int64_t d_[1] = {(int64_t)(C)};
    DAMA_TRY(nn_arg(op, "dweight", dweight, DAMA_F32, 1, d_, 1, (void **)&p_dweight)); }
  float *p_dbias;
  { const int64_t d_[1] = {(int64_t)(C)};
    DAMA_TRY(nn_arg(op, "dbias", dbias, DAMA_F32, 1, d_, 1, (void **)&p_dbias)); }
  const float *p_dout;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 2, d_, 0, (void **)&p_dout)); }
  const float *p_inp;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "inp", inp, DAMA_F32, 2, d_, 0, (void **)&p_inp)); }
  const float *p_weight;
  { const int64_t d_[1] = {(int64_t)(C)};
    DAMA_TRY(nn_arg(op, "weight", weight, DAMA_F32, 1, d_, 1, (void **)&p_weight)); }
  const float *p_mean;
  { const int64_t d_[1] = {(int64_t)(N)};
    DAMA_TRY(nn_arg(op, "mean", mean, DAMA_F32, 1, d_, 0, (void **)&p_mean)); }
  const float *p_rstd;
  { const int64_t d_[1] = {(int64_t)(N)};
    DAMA_TRY(nn_arg(op, "rstd", rstd, DAMA_F32, 1, d_, 0, (void **)&p_rstd)); }
  return be->ops->layernorm_backward(p_dinp, p_dweight, p_dbias, p_dout, p_inp, p_weight, p_mean, p_rstd, N, C);
}

dama_status dama_nn_gelu_forward(dama_tensor *out, const dama_tensor *inp, int64_t n) {
  static const char op[] = "gelu_forward";
  const dama_tensor *ts[2] = {out, inp};
  const char *ns[2] = {"out", "inp"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 2, ts, ns, &be));
  DAMA_NEED_OP(be, gelu_forward, op, 2, ts);
  float *p_out;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 1, d_, 0, (void **)&p_out)); }
  const float *p_inp;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "inp", inp, DAMA_F32, 1, d_, 0, (void **)&p_inp)); }
  return be->ops->gelu_forward(p_out, p_inp, n);
}

dama_status dama_nn_gelu_backward(dama_tensor *dinp, const dama_tensor *inp, const dama_tensor *dout, int64_t n) {
  static const char op[] = "gelu_backward";
  const dama_tensor *ts[3] = {dinp, inp, dout};
  const char *ns[3] = {"dinp", "inp", "dout"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, gelu_backward, op, 3, ts);
  float *p_dinp;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "dinp", dinp, DAMA_F32, 1, d_, 0, (void **)&p_dinp)); }
  const float *p_inp;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "inp", inp, DAMA_F32, 1, d_, 0, (void **)&p_inp)); }
  const float *p_dout;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 1, d_, 0, (void **)&p_dout)); }
  return be->ops->gelu_backward(p_dinp, p_inp, p_dout, n);
}

dama_status dama_nn_relu_forward(dama_tensor *out, const dama_tensor *inp, int64_t n) {
  static const char op[] = "relu_forward";
  const dama_tensor *ts[2] = {out, inp};
  const char *ns[2] = {"out", "inp"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 2, ts, ns, &be));
  DAMA_NEED_OP(be, relu_forward, op, 2, ts);
  float *p_out;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 1, d_, 0, (void **)&p_out)); }
  const float *p_inp;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "inp", inp, DAMA_F32, 1, d_, 0, (void **)&p_inp)); }
  return be->ops->relu_forward(p_out, p_inp, n);
}

dama_status dama_nn_relu_backward(dama_tensor *dinp, const dama_tensor *out, const dama_tensor *dout, int64_t n) {
  static const char op[] = "relu_backward";
  const dama_tensor *ts[3] = {dinp, out, dout};
  const char *ns[3] = {"dinp", "out", "dout"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, relu_backward, op, 3, ts);
  float *p_dinp;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "dinp", dinp, DAMA_F32, 1, d_, 0, (void **)&p_dinp)); }
  const float *p_out;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 1, d_, 0, (void **)&p_out)); }
  const float *p_dout;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 1, d_, 0, (void **)&p_dout)); }
  return be->ops->relu_backward(p_dinp, p_out, p_dout, n);
}

dama_status dama_nn_softmax_forward(dama_tensor *out, const dama_tensor *inp, int64_t N, int64_t C) {
  static const char op[] = "softmax_forward";
  const dama_tensor *ts[2] = {out, inp};
  const char *ns[2] = {"out", "inp"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 2, ts, ns, &be));
  DAMA_NEED_OP(be, softmax_forward, op, 2, ts);
  float *p_out;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 2, d_, 0, (void **)&p_out)); }
  const float *p_inp;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "inp", inp, DAMA_F32, 2, d_, 0, (void **)&p_inp)); }
  return be->ops->softmax_forward(p_out, p_inp, N, C);
}

dama_status dama_nn_softmax_backward(dama_tensor *dinp, const dama_tensor *out, const dama_tensor *dout, int64_t N, int64_t C) {
  static const char op[] = "softmax_backward";
  const dama_tensor *ts[3] = {dinp, out, dout};
  const char *ns[3] = {"dinp", "out", "dout"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, softmax_backward, op, 3, ts);
  float *p_dinp;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "dinp", dinp, DAMA_F32, 2, d_, 0, (void **)&p_dinp)); }
  const float *p_out;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 2, d_, 0, (void **)&p_out)); }
  const float *p_dout;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 2, d_, 0, (void **)&p_dout)); }
  return be->ops->softmax_backward(p_dinp, p_out, p_dout, N, C);
}

dama_status dama_nn_dropout_forward(dama_tensor *out, const dama_tensor *inp, const dama_tensor *mask, float scale, int64_t n) {
  static const char op[] = "dropout_forward";
  const dama_tensor *ts[3] = {out, inp, mask};
  const char *ns[3] = {"out", "inp", "mask"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, dropout_forward, op, 3, ts);
  float *p_out;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 1, d_, 0, (void **)&p_out)); }
  const float *p_inp;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "inp", inp, DAMA_F32, 1, d_, 0, (void **)&p_inp)); }
  const float *p_mask;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "mask", mask, DAMA_F32, 1, d_, 0, (void **)&p_mask)); }
  return be->ops->dropout_forward(p_out, p_inp, p_mask, scale, n);
}

dama_status dama_nn_dropout_backward(dama_tensor *dinp, const dama_tensor *dout, const dama_tensor *mask, float scale, int64_t n) {
  static const char op[] = "dropout_backward";
  const dama_tensor *ts[3] = {dinp, dout, mask};
  const char *ns[3] = {"dinp", "dout", "mask"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, dropout_backward, op, 3, ts);
  float *p_dinp;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "dinp", dinp, DAMA_F32, 1, d_, 0, (void **)&p_dinp)); }
  const float *p_dout;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 1, d_, 0, (void **)&p_dout)); }
  const float *p_mask;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "mask", mask, DAMA_F32, 1, d_, 0, (void **)&p_mask)); }
  return be->ops->dropout_backward(p_dinp, p_dout, p_mask, scale, n);
}

dama_status dama_nn_drop_path_forward(dama_tensor *out, const dama_tensor *inp, const dama_tensor *mask, float scale, int64_t N, int64_t M) {
  static const char op[] = "drop_path_forward";
  const dama_tensor *ts[3] = {out, inp, mask};
  const char *ns[3] = {"out", "inp", "mask"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, drop_path_forward, op, 3, ts);
  float *p_out;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(M)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 2, d_, 0, (void **)&p_out)); }
  const float *p_inp;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(M)};
    DAMA_TRY(nn_arg(op, "inp", inp, DAMA_F32, 2, d_, 0, (void **)&p_inp)); }
  const float *p_mask;
  { const int64_t d_[1] = {(int64_t)(N)};
    DAMA_TRY(nn_arg(op, "mask", mask, DAMA_F32, 1, d_, 0, (void **)&p_mask)); }
  return be->ops->drop_path_forward(p_out, p_inp, p_mask, scale, N, M);
}

dama_status dama_nn_drop_path_backward(dama_tensor *dinp, const dama_tensor *dout, const dama_tensor *mask, float scale, int64_t N, int64_t M) {
  static const char op[] = "drop_path_backward";
  const dama_tensor *ts[3] = {dinp, dout, mask};
  const char *ns[3] = {"dinp", "dout", "mask"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, drop_path_backward, op, 3, ts);
  float *p_dinp;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(M)};
    DAMA_TRY(nn_arg(op, "dinp", dinp, DAMA_F32, 2, d_, 0, (void **)&p_dinp)); }
  const float *p_dout;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(M)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 2, d_, 0, (void **)&p_dout)); }
  const float *p_mask;
  { const int64_t d_[1] = {(int64_t)(N)};
    DAMA_TRY(nn_arg(op, "mask", mask, DAMA_F32, 1, d_, 0, (void **)&p_mask)); }
  return be->ops->drop_path_backward(p_dinp, p_dout, p_mask, scale, N, M);
}

dama_status dama_nn_attention_forward(dama_tensor *out, dama_tensor *att, const dama_tensor *qkv, int64_t B, int64_t T, int64_t C, int64_t NH, float scale) {
  static const char op[] = "attention_forward";
  const dama_tensor *ts[3] = {out, att, qkv};
  const char *ns[3] = {"out", "att", "qkv"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, attention_forward, op, 3, ts);
  float *p_out;
  { const int64_t d_[3] = {(int64_t)(B), (int64_t)(T), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 3, d_, 0, (void **)&p_out)); }
  float *p_att;
  { const int64_t d_[4] = {(int64_t)(B), (int64_t)(NH), (int64_t)(T), (int64_t)(T)};
    DAMA_TRY(nn_arg(op, "att", att, DAMA_F32, 4, d_, 0, (void **)&p_att)); }
  const float *p_qkv;
  { const int64_t d_[4] = {(int64_t)(B), (int64_t)(T), (int64_t)(3), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "qkv", qkv, DAMA_F32, 4, d_, 0, (void **)&p_qkv)); }
  return be->ops->attention_forward(p_out, p_att, p_qkv, B, T, C, NH, scale);
}

dama_status dama_nn_attention_backward(dama_tensor *dqkv, const dama_tensor *dout, const dama_tensor *qkv, const dama_tensor *att, int64_t B, int64_t T, int64_t C, int64_t NH, float scale) {
  static const char op[] = "attention_backward";
  const dama_tensor *ts[4] = {dqkv, dout, qkv, att};
  const char *ns[4] = {"dqkv", "dout", "qkv", "att"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 4, ts, ns, &be));
  DAMA_NEED_OP(be, attention_backward, op, 4, ts);
  float *p_dqkv;
  { const int64_t d_[4] = {(int64_t)(B), (int64_t)(T), (int64_t)(3), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "dqkv", dqkv, DAMA_F32, 4, d_, 0, (void **)&p_dqkv)); }
  const float *p_dout;
  { const int64_t d_[3] = {(int64_t)(B), (int64_t)(T), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 3, d_, 0, (void **)&p_dout)); }
  const float *p_qkv;
  { const int64_t d_[4] = {(int64_t)(B), (int64_t)(T), (int64_t)(3), (int64_t)(C)};
    DAMA_TRY(nn_arg(op, "qkv", qkv, DAMA_F32, 4, d_, 0, (void **)&p_qkv)); }
  const float *p_att;
  { const int64_t d_[4] = {(int64_t)(B), (int64_t)(NH), (int64_t)(T), (int64_t)(T)};
    DAMA_TRY(nn_arg(op, "att", att, DAMA_F32, 4, d_, 0, (void **)&p_att)); }
  return be->ops->attention_backward(p_dqkv, p_dout, p_qkv, p_att, B, T, C, NH, scale);
}

dama_status dama_nn_patchify(dama_tensor *patches, const dama_tensor *imgs, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p) {
  static const char op[] = "patchify";
  const dama_tensor *ts[2] = {patches, imgs};
  const char *ns[2] = {"patches", "imgs"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 2, ts, ns, &be));
  DAMA_NEED_OP(be, patchify, op, 2, ts);
  float *p_patches;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)(C), (int64_t)(H), (int64_t)(W)};
    DAMA_TRY(nn_arg(op, "patches", patches, DAMA_F32, 4, d_, 0, (void **)&p_patches)); }
  const float *p_imgs;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)(C), (int64_t)(H), (int64_t)(W)};
    DAMA_TRY(nn_arg(op, "imgs", imgs, DAMA_F32, 4, d_, 0, (void **)&p_imgs)); }
  return be->ops->patchify(p_patches, p_imgs, N, C, H, W, p);
}

dama_status dama_nn_unpatchify(dama_tensor *imgs, const dama_tensor *patches, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p) {
  static const char op[] = "unpatchify";
  const dama_tensor *ts[2] = {imgs, patches};
  const char *ns[2] = {"imgs", "patches"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 2, ts, ns, &be));
  DAMA_NEED_OP(be, unpatchify, op, 2, ts);
  float *p_imgs;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)(C), (int64_t)(H), (int64_t)(W)};
    DAMA_TRY(nn_arg(op, "imgs", imgs, DAMA_F32, 4, d_, 0, (void **)&p_imgs)); }
  const float *p_patches;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)(C), (int64_t)(H), (int64_t)(W)};
    DAMA_TRY(nn_arg(op, "patches", patches, DAMA_F32, 4, d_, 0, (void **)&p_patches)); }
  return be->ops->unpatchify(p_imgs, p_patches, N, C, H, W, p);
}

dama_status dama_nn_patch_embed_forward(dama_tensor *out, dama_tensor *col, const dama_tensor *imgs, const dama_tensor *weight, const dama_tensor *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, int64_t D) {
  static const char op[] = "patch_embed_forward";
  const dama_tensor *ts[5] = {out, col, imgs, weight, bias};
  const char *ns[5] = {"out", "col", "imgs", "weight", "bias"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 5, ts, ns, &be));
  DAMA_NEED_OP(be, patch_embed_forward, op, 5, ts);
  float *p_out;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)((H / (p > 0 ? p : 1))), (int64_t)((W / (p > 0 ? p : 1))), (int64_t)(D)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 4, d_, 0, (void **)&p_out)); }
  float *p_col;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)(C), (int64_t)(H), (int64_t)(W)};
    DAMA_TRY(nn_arg(op, "col", col, DAMA_F32, 4, d_, 0, (void **)&p_col)); }
  const float *p_imgs;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)(C), (int64_t)(H), (int64_t)(W)};
    DAMA_TRY(nn_arg(op, "imgs", imgs, DAMA_F32, 4, d_, 0, (void **)&p_imgs)); }
  const float *p_weight;
  { const int64_t d_[4] = {(int64_t)(D), (int64_t)(C), (int64_t)(p), (int64_t)(p)};
    DAMA_TRY(nn_arg(op, "weight", weight, DAMA_F32, 4, d_, 0, (void **)&p_weight)); }
  const float *p_bias;
  { const int64_t d_[1] = {(int64_t)(D)};
    DAMA_TRY(nn_arg(op, "bias", bias, DAMA_F32, 1, d_, 1, (void **)&p_bias)); }
  return be->ops->patch_embed_forward(p_out, p_col, p_imgs, p_weight, p_bias, N, C, H, W, p, D);
}

dama_status dama_nn_patch_embed_backward(dama_tensor *dimgs, dama_tensor *dweight, dama_tensor *dbias, const dama_tensor *dout, const dama_tensor *col, const dama_tensor *weight, dama_tensor *scratch, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, int64_t D) {
  static const char op[] = "patch_embed_backward";
  const dama_tensor *ts[7] = {dimgs, dweight, dbias, dout, col, weight, scratch};
  const char *ns[7] = {"dimgs", "dweight", "dbias", "dout", "col", "weight", "scratch"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 7, ts, ns, &be));
  DAMA_NEED_OP(be, patch_embed_backward, op, 7, ts);
  float *p_dimgs;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)(C), (int64_t)(H), (int64_t)(W)};
    DAMA_TRY(nn_arg(op, "dimgs", dimgs, DAMA_F32, 4, d_, 1, (void **)&p_dimgs)); }
  float *p_dweight;
  { const int64_t d_[4] = {(int64_t)(D), (int64_t)(C), (int64_t)(p), (int64_t)(p)};
    DAMA_TRY(nn_arg(op, "dweight", dweight, DAMA_F32, 4, d_, 1, (void **)&p_dweight)); }
  float *p_dbias;
  { const int64_t d_[1] = {(int64_t)(D)};
    DAMA_TRY(nn_arg(op, "dbias", dbias, DAMA_F32, 1, d_, 1, (void **)&p_dbias)); }
  const float *p_dout;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)((H / (p > 0 ? p : 1))), (int64_t)((W / (p > 0 ? p : 1))), (int64_t)(D)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 4, d_, 0, (void **)&p_dout)); }
  const float *p_col;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)(C), (int64_t)(H), (int64_t)(W)};
    DAMA_TRY(nn_arg(op, "col", col, DAMA_F32, 4, d_, 0, (void **)&p_col)); }
  const float *p_weight;
  { const int64_t d_[4] = {(int64_t)(D), (int64_t)(C), (int64_t)(p), (int64_t)(p)};
    DAMA_TRY(nn_arg(op, "weight", weight, DAMA_F32, 4, d_, 1, (void **)&p_weight)); }
  float *p_scratch;
  { const int64_t d_[4] = {(int64_t)(N), (int64_t)(C), (int64_t)(H), (int64_t)(W)};
    DAMA_TRY(nn_arg(op, "scratch", scratch, DAMA_F32, 4, d_, 1, (void **)&p_scratch)); }
  return be->ops->patch_embed_backward(p_dimgs, p_dweight, p_dbias, p_dout, p_col, p_weight, p_scratch, N, C, H, W, p, D);
}

dama_status dama_nn_pos_embed_2d_sincos(dama_tensor *out, int64_t D, int64_t grid_h, int64_t grid_w, int cls) {
  static const char op[] = "pos_embed_2d_sincos";
  const dama_tensor *ts[1] = {out};
  const char *ns[1] = {"out"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 1, ts, ns, &be));
  DAMA_NEED_OP(be, pos_embed_2d_sincos, op, 1, ts);
  float *p_out;
  if (grid_h < 0 || grid_w < 0 || grid_h > INT64_MAX / 2 / (grid_w > 0 ? grid_w : 1))
    return dama_error(DAMA_ERR_ARG, "pos_embed_2d_sincos: bad grid %lld x %lld", (long long)grid_h, (long long)grid_w);
  { const int64_t d_[2] = {grid_h * grid_w + (cls ? 1 : 0), D};   /* a cls row first when cls */
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 2, d_, 0, (void **)&p_out)); }
  return be->ops->pos_embed_2d_sincos(p_out, D, grid_h, grid_w, cls);
}

dama_status dama_nn_sq_error_forward(dama_tensor *loss, const dama_tensor *pred, const dama_tensor *target, int64_t n, int reduction) {
  static const char op[] = "sq_error_forward";
  const dama_tensor *ts[3] = {loss, pred, target};
  const char *ns[3] = {"loss", "pred", "target"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, sq_error_forward, op, 3, ts);
  float *p_loss;
  { const int64_t d_[1] = {(int64_t)(1)};
    DAMA_TRY(nn_arg(op, "loss", loss, DAMA_F32, 1, d_, 0, (void **)&p_loss)); }
  const float *p_pred;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "pred", pred, DAMA_F32, 1, d_, 0, (void **)&p_pred)); }
  const float *p_target;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "target", target, DAMA_F32, 1, d_, 0, (void **)&p_target)); }
  return be->ops->sq_error_forward(p_loss, p_pred, p_target, n, reduction);
}

dama_status dama_nn_sq_error_backward(dama_tensor *dpred, dama_tensor *dtarget, const dama_tensor *pred, const dama_tensor *target, int64_t n, int reduction, const dama_tensor *dloss) {
  static const char op[] = "sq_error_backward";
  const dama_tensor *ts[5] = {dpred, dtarget, pred, target, dloss};
  const char *ns[5] = {"dpred", "dtarget", "pred", "target", "dloss"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 5, ts, ns, &be));
  DAMA_NEED_OP(be, sq_error_backward, op, 5, ts);
  float *p_dpred;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "dpred", dpred, DAMA_F32, 1, d_, 1, (void **)&p_dpred)); }
  float *p_dtarget;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "dtarget", dtarget, DAMA_F32, 1, d_, 1, (void **)&p_dtarget)); }
  const float *p_pred;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "pred", pred, DAMA_F32, 1, d_, 0, (void **)&p_pred)); }
  const float *p_target;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "target", target, DAMA_F32, 1, d_, 0, (void **)&p_target)); }
  const float *p_dloss;
  { const int64_t d_[1] = {(int64_t)(1)};
    DAMA_TRY(nn_arg(op, "dloss", dloss, DAMA_F32, 1, d_, 0, (void **)&p_dloss)); }
  return be->ops->sq_error_backward(p_dpred, p_dtarget, p_pred, p_target, n, reduction, p_dloss);
}

dama_status dama_nn_smooth_l1_loss_forward(dama_tensor *loss, const dama_tensor *pred, const dama_tensor *target, int64_t n, float beta, int reduction) {
  static const char op[] = "smooth_l1_loss_forward";
  const dama_tensor *ts[3] = {loss, pred, target};
  const char *ns[3] = {"loss", "pred", "target"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, smooth_l1_loss_forward, op, 3, ts);
  float *p_loss;
  { const int64_t d_[1] = {(int64_t)(1)};
    DAMA_TRY(nn_arg(op, "loss", loss, DAMA_F32, 1, d_, 0, (void **)&p_loss)); }
  const float *p_pred;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "pred", pred, DAMA_F32, 1, d_, 0, (void **)&p_pred)); }
  const float *p_target;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "target", target, DAMA_F32, 1, d_, 0, (void **)&p_target)); }
  return be->ops->smooth_l1_loss_forward(p_loss, p_pred, p_target, n, beta, reduction);
}

dama_status dama_nn_smooth_l1_loss_backward(dama_tensor *dpred, dama_tensor *dtarget, const dama_tensor *pred, const dama_tensor *target, int64_t n, float beta, int reduction, const dama_tensor *dloss) {
  static const char op[] = "smooth_l1_loss_backward";
  const dama_tensor *ts[5] = {dpred, dtarget, pred, target, dloss};
  const char *ns[5] = {"dpred", "dtarget", "pred", "target", "dloss"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 5, ts, ns, &be));
  DAMA_NEED_OP(be, smooth_l1_loss_backward, op, 5, ts);
  float *p_dpred;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "dpred", dpred, DAMA_F32, 1, d_, 1, (void **)&p_dpred)); }
  float *p_dtarget;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "dtarget", dtarget, DAMA_F32, 1, d_, 1, (void **)&p_dtarget)); }
  const float *p_pred;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "pred", pred, DAMA_F32, 1, d_, 0, (void **)&p_pred)); }
  const float *p_target;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "target", target, DAMA_F32, 1, d_, 0, (void **)&p_target)); }
  const float *p_dloss;
  { const int64_t d_[1] = {(int64_t)(1)};
    DAMA_TRY(nn_arg(op, "dloss", dloss, DAMA_F32, 1, d_, 0, (void **)&p_dloss)); }
  return be->ops->smooth_l1_loss_backward(p_dpred, p_dtarget, p_pred, p_target, n, beta, reduction, p_dloss);
}

dama_status dama_nn_cross_entropy_forward(dama_tensor *loss, const dama_tensor *logits, const dama_tensor *target, int64_t N, int64_t K, float label_smoothing) {
  static const char op[] = "cross_entropy_forward";
  const dama_tensor *ts[3] = {loss, logits, target};
  const char *ns[3] = {"loss", "logits", "target"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, cross_entropy_forward, op, 3, ts);
  float *p_loss;
  { const int64_t d_[1] = {(int64_t)(1)};
    DAMA_TRY(nn_arg(op, "loss", loss, DAMA_F32, 1, d_, 0, (void **)&p_loss)); }
  const float *p_logits;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "logits", logits, DAMA_F32, 2, d_, 0, (void **)&p_logits)); }
  const int64_t *p_target;
  { const int64_t d_[1] = {(int64_t)(N)};
    DAMA_TRY(nn_arg(op, "target", target, DAMA_I64, 1, d_, 0, (void **)&p_target)); }
  return be->ops->cross_entropy_forward(p_loss, p_logits, p_target, N, K, label_smoothing);
}

dama_status dama_nn_cross_entropy_backward(dama_tensor *dlogits, const dama_tensor *logits, const dama_tensor *target, int64_t N, int64_t K, float label_smoothing, const dama_tensor *dloss) {
  static const char op[] = "cross_entropy_backward";
  const dama_tensor *ts[4] = {dlogits, logits, target, dloss};
  const char *ns[4] = {"dlogits", "logits", "target", "dloss"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 4, ts, ns, &be));
  DAMA_NEED_OP(be, cross_entropy_backward, op, 4, ts);
  float *p_dlogits;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "dlogits", dlogits, DAMA_F32, 2, d_, 0, (void **)&p_dlogits)); }
  const float *p_logits;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "logits", logits, DAMA_F32, 2, d_, 0, (void **)&p_logits)); }
  const int64_t *p_target;
  { const int64_t d_[1] = {(int64_t)(N)};
    DAMA_TRY(nn_arg(op, "target", target, DAMA_I64, 1, d_, 0, (void **)&p_target)); }
  const float *p_dloss;
  { const int64_t d_[1] = {(int64_t)(1)};
    DAMA_TRY(nn_arg(op, "dloss", dloss, DAMA_F32, 1, d_, 0, (void **)&p_dloss)); }
  return be->ops->cross_entropy_backward(p_dlogits, p_logits, p_target, N, K, label_smoothing, p_dloss);
}

dama_status dama_nn_soft_cross_entropy_forward(dama_tensor *loss, const dama_tensor *logits, const dama_tensor *target, int64_t N, int64_t K) {
  static const char op[] = "soft_cross_entropy_forward";
  const dama_tensor *ts[3] = {loss, logits, target};
  const char *ns[3] = {"loss", "logits", "target"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, soft_cross_entropy_forward, op, 3, ts);
  float *p_loss;
  { const int64_t d_[1] = {(int64_t)(1)};
    DAMA_TRY(nn_arg(op, "loss", loss, DAMA_F32, 1, d_, 0, (void **)&p_loss)); }
  const float *p_logits;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "logits", logits, DAMA_F32, 2, d_, 0, (void **)&p_logits)); }
  const float *p_target;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "target", target, DAMA_F32, 2, d_, 0, (void **)&p_target)); }
  return be->ops->soft_cross_entropy_forward(p_loss, p_logits, p_target, N, K);
}

dama_status dama_nn_soft_cross_entropy_backward(dama_tensor *dlogits, const dama_tensor *logits, const dama_tensor *target, int64_t N, int64_t K, const dama_tensor *dloss) {
  static const char op[] = "soft_cross_entropy_backward";
  const dama_tensor *ts[4] = {dlogits, logits, target, dloss};
  const char *ns[4] = {"dlogits", "logits", "target", "dloss"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 4, ts, ns, &be));
  DAMA_NEED_OP(be, soft_cross_entropy_backward, op, 4, ts);
  float *p_dlogits;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "dlogits", dlogits, DAMA_F32, 2, d_, 0, (void **)&p_dlogits)); }
  const float *p_logits;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "logits", logits, DAMA_F32, 2, d_, 0, (void **)&p_logits)); }
  const float *p_target;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "target", target, DAMA_F32, 2, d_, 0, (void **)&p_target)); }
  const float *p_dloss;
  { const int64_t d_[1] = {(int64_t)(1)};
    DAMA_TRY(nn_arg(op, "dloss", dloss, DAMA_F32, 1, d_, 0, (void **)&p_dloss)); }
  return be->ops->soft_cross_entropy_backward(p_dlogits, p_logits, p_target, N, K, p_dloss);
}

dama_status dama_nn_normpix_loss_forward(dama_tensor *loss, dama_tensor *loss_per_patch, const dama_tensor *pred, const dama_tensor *target, const dama_tensor *mask, int64_t N, int64_t L, int64_t P, int norm_pix, float eps) {
  static const char op[] = "normpix_loss_forward";
  const dama_tensor *ts[5] = {loss, loss_per_patch, pred, target, mask};
  const char *ns[5] = {"loss", "loss_per_patch", "pred", "target", "mask"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 5, ts, ns, &be));
  DAMA_NEED_OP(be, normpix_loss_forward, op, 5, ts);
  float *p_loss;
  { const int64_t d_[1] = {(int64_t)(1)};
    DAMA_TRY(nn_arg(op, "loss", loss, DAMA_F32, 1, d_, 0, (void **)&p_loss)); }
  float *p_loss_per_patch;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "loss_per_patch", loss_per_patch, DAMA_F32, 2, d_, 1, (void **)&p_loss_per_patch)); }
  const float *p_pred;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(L), (int64_t)(P)};
    DAMA_TRY(nn_arg(op, "pred", pred, DAMA_F32, 3, d_, 0, (void **)&p_pred)); }
  const float *p_target;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(L), (int64_t)(P)};
    DAMA_TRY(nn_arg(op, "target", target, DAMA_F32, 3, d_, 0, (void **)&p_target)); }
  const float *p_mask;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "mask", mask, DAMA_F32, 2, d_, 0, (void **)&p_mask)); }
  return be->ops->normpix_loss_forward(p_loss, p_loss_per_patch, p_pred, p_target, p_mask, N, L, P, norm_pix, eps);
}

dama_status dama_nn_normpix_loss_backward(dama_tensor *dpred, const dama_tensor *pred, const dama_tensor *target, const dama_tensor *mask, int64_t N, int64_t L, int64_t P, int norm_pix, float eps, const dama_tensor *dloss) {
  static const char op[] = "normpix_loss_backward";
  const dama_tensor *ts[5] = {dpred, pred, target, mask, dloss};
  const char *ns[5] = {"dpred", "pred", "target", "mask", "dloss"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 5, ts, ns, &be));
  DAMA_NEED_OP(be, normpix_loss_backward, op, 5, ts);
  float *p_dpred;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(L), (int64_t)(P)};
    DAMA_TRY(nn_arg(op, "dpred", dpred, DAMA_F32, 3, d_, 0, (void **)&p_dpred)); }
  const float *p_pred;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(L), (int64_t)(P)};
    DAMA_TRY(nn_arg(op, "pred", pred, DAMA_F32, 3, d_, 0, (void **)&p_pred)); }
  const float *p_target;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(L), (int64_t)(P)};
    DAMA_TRY(nn_arg(op, "target", target, DAMA_F32, 3, d_, 0, (void **)&p_target)); }
  const float *p_mask;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "mask", mask, DAMA_F32, 2, d_, 0, (void **)&p_mask)); }
  const float *p_dloss;
  { const int64_t d_[1] = {(int64_t)(1)};
    DAMA_TRY(nn_arg(op, "dloss", dloss, DAMA_F32, 1, d_, 0, (void **)&p_dloss)); }
  return be->ops->normpix_loss_backward(p_dpred, p_pred, p_target, p_mask, N, L, P, norm_pix, eps, p_dloss);
}

dama_status dama_nn_mask_random(dama_tensor *mask, dama_tensor *ids_shuffle, dama_tensor *ids_restore, dama_tensor *ids_keep, const dama_tensor *noise, int64_t N, int64_t L, int64_t K) {
  static const char op[] = "mask_random";
  const dama_tensor *ts[5] = {mask, ids_shuffle, ids_restore, ids_keep, noise};
  const char *ns[5] = {"mask", "ids_shuffle", "ids_restore", "ids_keep", "noise"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 5, ts, ns, &be));
  DAMA_NEED_OP(be, mask_random, op, 5, ts);
  float *p_mask;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "mask", mask, DAMA_F32, 2, d_, 1, (void **)&p_mask)); }
  int64_t *p_ids_shuffle;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "ids_shuffle", ids_shuffle, DAMA_I64, 2, d_, 0, (void **)&p_ids_shuffle)); }
  int64_t *p_ids_restore;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "ids_restore", ids_restore, DAMA_I64, 2, d_, 1, (void **)&p_ids_restore)); }
  int64_t *p_ids_keep;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "ids_keep", ids_keep, DAMA_I64, 2, d_, 1, (void **)&p_ids_keep)); }
  const float *p_noise;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "noise", noise, DAMA_F32, 2, d_, 0, (void **)&p_noise)); }
  return be->ops->mask_random(p_mask, p_ids_shuffle, p_ids_restore, p_ids_keep, p_noise, N, L, K);
}

dama_status dama_nn_mask_adaptive(dama_tensor *m2, dama_tensor *ids_shuffle2, dama_tensor *ids_restore2, dama_tensor *ids_keep2, const dama_tensor *m1, const dama_tensor *loss, int64_t N, int64_t L, double ratio, double overlap, int32_t mode) {
  static const char op[] = "mask_adaptive";
  int64_t K = 0;
  DAMA_TRY(dama_mask_adaptive_counts(L, ratio, overlap, &K, NULL, NULL));
  const dama_tensor *ts[6] = {m2, ids_shuffle2, ids_restore2, ids_keep2, m1, loss};
  const char *ns[6] = {"m2", "ids_shuffle2", "ids_restore2", "ids_keep2", "m1", "loss"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 6, ts, ns, &be));
  DAMA_NEED_OP(be, mask_adaptive, op, 6, ts);
  float *p_m2;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "m2", m2, DAMA_F32, 2, d_, 1, (void **)&p_m2)); }
  int64_t *p_ids_shuffle2;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "ids_shuffle2", ids_shuffle2, DAMA_I64, 2, d_, 0, (void **)&p_ids_shuffle2)); }
  int64_t *p_ids_restore2;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "ids_restore2", ids_restore2, DAMA_I64, 2, d_, 1, (void **)&p_ids_restore2)); }
  int64_t *p_ids_keep2;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "ids_keep2", ids_keep2, DAMA_I64, 2, d_, 1, (void **)&p_ids_keep2)); }
  const float *p_m1;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "m1", m1, DAMA_F32, 2, d_, 0, (void **)&p_m1)); }
  const float *p_loss;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "loss", loss, DAMA_F32, 2, d_, 0, (void **)&p_loss)); }
  return be->ops->mask_adaptive(p_m2, p_ids_shuffle2, p_ids_restore2, p_ids_keep2, p_m1, p_loss, N, L, ratio, overlap, mode);
}

dama_status dama_nn_mask_ids(dama_tensor *ids_shuffle, dama_tensor *ids_restore, dama_tensor *ids_keep, const dama_tensor *mask, int64_t N, int64_t L, int64_t K) {
  static const char op[] = "mask_ids";
  const dama_tensor *ts[4] = {ids_shuffle, ids_restore, ids_keep, mask};
  const char *ns[4] = {"ids_shuffle", "ids_restore", "ids_keep", "mask"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 4, ts, ns, &be));
  DAMA_NEED_OP(be, mask_ids, op, 4, ts);
  int64_t *p_ids_shuffle;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "ids_shuffle", ids_shuffle, DAMA_I64, 2, d_, 0, (void **)&p_ids_shuffle)); }
  int64_t *p_ids_restore;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "ids_restore", ids_restore, DAMA_I64, 2, d_, 1, (void **)&p_ids_restore)); }
  int64_t *p_ids_keep;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "ids_keep", ids_keep, DAMA_I64, 2, d_, 1, (void **)&p_ids_keep)); }
  const float *p_mask;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "mask", mask, DAMA_F32, 2, d_, 0, (void **)&p_mask)); }
  return be->ops->mask_ids(p_ids_shuffle, p_ids_restore, p_ids_keep, p_mask, N, L, K);
}

dama_status dama_nn_mask_gather_forward(dama_tensor *out, const dama_tensor *x, const dama_tensor *ids_keep, int64_t N, int64_t L, int64_t K, int64_t D) {
  static const char op[] = "mask_gather_forward";
  const dama_tensor *ts[3] = {out, x, ids_keep};
  const char *ns[3] = {"out", "x", "ids_keep"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, mask_gather_forward, op, 3, ts);
  float *p_out;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(K), (int64_t)(D)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 3, d_, 0, (void **)&p_out)); }
  const float *p_x;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(L), (int64_t)(D)};
    DAMA_TRY(nn_arg(op, "x", x, DAMA_F32, 3, d_, 0, (void **)&p_x)); }
  const int64_t *p_ids_keep;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "ids_keep", ids_keep, DAMA_I64, 2, d_, 0, (void **)&p_ids_keep)); }
  return be->ops->mask_gather_forward(p_out, p_x, p_ids_keep, N, L, K, D);
}

dama_status dama_nn_mask_gather_backward(dama_tensor *dx, const dama_tensor *dout, const dama_tensor *ids_keep, int64_t N, int64_t L, int64_t K, int64_t D) {
  static const char op[] = "mask_gather_backward";
  const dama_tensor *ts[3] = {dx, dout, ids_keep};
  const char *ns[3] = {"dx", "dout", "ids_keep"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, mask_gather_backward, op, 3, ts);
  float *p_dx;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(L), (int64_t)(D)};
    DAMA_TRY(nn_arg(op, "dx", dx, DAMA_F32, 3, d_, 0, (void **)&p_dx)); }
  const float *p_dout;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(K), (int64_t)(D)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 3, d_, 0, (void **)&p_dout)); }
  const int64_t *p_ids_keep;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(K)};
    DAMA_TRY(nn_arg(op, "ids_keep", ids_keep, DAMA_I64, 2, d_, 0, (void **)&p_ids_keep)); }
  return be->ops->mask_gather_backward(p_dx, p_dout, p_ids_keep, N, L, K, D);
}

dama_status dama_nn_mask_unshuffle_forward(dama_tensor *out, const dama_tensor *tokens, const dama_tensor *mask_token, const dama_tensor *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D) {
  static const char op[] = "mask_unshuffle_forward";
  const dama_tensor *ts[4] = {out, tokens, mask_token, ids_restore};
  const char *ns[4] = {"out", "tokens", "mask_token", "ids_restore"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 4, ts, ns, &be));
  DAMA_NEED_OP(be, mask_unshuffle_forward, op, 4, ts);
  float *p_out;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(L), (int64_t)(D)};
    DAMA_TRY(nn_arg(op, "out", out, DAMA_F32, 3, d_, 0, (void **)&p_out)); }
  const float *p_tokens;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(K), (int64_t)(D)};
    DAMA_TRY(nn_arg(op, "tokens", tokens, DAMA_F32, 3, d_, 1, (void **)&p_tokens)); }
  const float *p_mask_token;
  { const int64_t d_[1] = {(int64_t)(D)};
    DAMA_TRY(nn_arg(op, "mask_token", mask_token, DAMA_F32, 1, d_, 0, (void **)&p_mask_token)); }
  const int64_t *p_ids_restore;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "ids_restore", ids_restore, DAMA_I64, 2, d_, 0, (void **)&p_ids_restore)); }
  return be->ops->mask_unshuffle_forward(p_out, p_tokens, p_mask_token, p_ids_restore, N, L, K, D);
}

dama_status dama_nn_mask_unshuffle_backward(dama_tensor *dtokens, dama_tensor *dmask_token, const dama_tensor *dout, const dama_tensor *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D) {
  static const char op[] = "mask_unshuffle_backward";
  const dama_tensor *ts[4] = {dtokens, dmask_token, dout, ids_restore};
  const char *ns[4] = {"dtokens", "dmask_token", "dout", "ids_restore"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 4, ts, ns, &be));
  DAMA_NEED_OP(be, mask_unshuffle_backward, op, 4, ts);
  float *p_dtokens;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(K), (int64_t)(D)};
    DAMA_TRY(nn_arg(op, "dtokens", dtokens, DAMA_F32, 3, d_, 1, (void **)&p_dtokens)); }
  float *p_dmask_token;
  { const int64_t d_[1] = {(int64_t)(D)};
    DAMA_TRY(nn_arg(op, "dmask_token", dmask_token, DAMA_F32, 1, d_, 1, (void **)&p_dmask_token)); }
  const float *p_dout;
  { const int64_t d_[3] = {(int64_t)(N), (int64_t)(L), (int64_t)(D)};
    DAMA_TRY(nn_arg(op, "dout", dout, DAMA_F32, 3, d_, 0, (void **)&p_dout)); }
  const int64_t *p_ids_restore;
  { const int64_t d_[2] = {(int64_t)(N), (int64_t)(L)};
    DAMA_TRY(nn_arg(op, "ids_restore", ids_restore, DAMA_I64, 2, d_, 0, (void **)&p_ids_restore)); }
  return be->ops->mask_unshuffle_backward(p_dtokens, p_dmask_token, p_dout, p_ids_restore, N, L, K, D);
}

dama_status dama_nn_adamw_step(dama_tensor *params, const dama_tensor *grads, dama_tensor *m, dama_tensor *v, int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step) {
  static const char op[] = "adamw_step";
  const dama_tensor *ts[4] = {params, grads, m, v};
  const char *ns[4] = {"params", "grads", "m", "v"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 4, ts, ns, &be));
  DAMA_NEED_OP(be, adamw_step, op, 4, ts);
  float *p_params;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "params", params, DAMA_F32, 1, d_, 0, (void **)&p_params)); }
  const float *p_grads;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "grads", grads, DAMA_F32, 1, d_, 0, (void **)&p_grads)); }
  float *p_m;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "m", m, DAMA_F32, 1, d_, 0, (void **)&p_m)); }
  float *p_v;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "v", v, DAMA_F32, 1, d_, 0, (void **)&p_v)); }
  return be->ops->adamw_step(p_params, p_grads, p_m, p_v, n, lr, beta1, beta2, eps, weight_decay, step);
}

dama_status dama_nn_sgd_step(dama_tensor *params, const dama_tensor *grads, dama_tensor *buf, int64_t n, float lr, float momentum, float dampening, float weight_decay, int nesterov, int64_t step) {
  static const char op[] = "sgd_step";
  const dama_tensor *ts[3] = {params, grads, buf};
  const char *ns[3] = {"params", "grads", "buf"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 3, ts, ns, &be));
  DAMA_NEED_OP(be, sgd_step, op, 3, ts);
  float *p_params;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "params", params, DAMA_F32, 1, d_, 0, (void **)&p_params)); }
  const float *p_grads;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "grads", grads, DAMA_F32, 1, d_, 0, (void **)&p_grads)); }
  float *p_buf;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "buf", buf, DAMA_F32, 1, d_, 1, (void **)&p_buf)); }
  return be->ops->sgd_step(p_params, p_grads, p_buf, n, lr, momentum, dampening, weight_decay, nesterov, step);
}

dama_status dama_nn_ema_update(dama_tensor *ema, const dama_tensor *p, int64_t n, float momentum) {
  static const char op[] = "ema_update";
  const dama_tensor *ts[2] = {ema, p};
  const char *ns[2] = {"ema", "p"};
  const dama_backend *be;
  DAMA_TRY(nn_dispatch(op, 2, ts, ns, &be));
  DAMA_NEED_OP(be, ema_update, op, 2, ts);
  float *p_ema;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "ema", ema, DAMA_F32, 1, d_, 0, (void **)&p_ema)); }
  const float *p_p;
  { const int64_t d_[1] = {(int64_t)(n)};
    DAMA_TRY(nn_arg(op, "p", p, DAMA_F32, 1, d_, 0, (void **)&p_p)); }
  return be->ops->ema_update(p_ema, p_p, n, momentum);
}

dama_status nn_dispatch(const char *op, int32_t n, const dama_tensor *const *ts, const char *const *names,
                        const dama_backend **be) {
  return dama_dispatch(op, n, ts, names, be);
}

dama_status nn_arg(const char *op, const char *name, const dama_tensor *t, dama_dtype dtype, int32_t ndims,
                   const int64_t *dims, int optional, void **ptr) {
  *ptr = NULL;
  if (!t) {
    if (optional) return DAMA_OK;
    return dama_error(DAMA_ERR_ARG, "%s: tensor '%s' is required", op, name);
  }
  if (t->dtype != (int32_t)dtype)
    return dama_error(DAMA_ERR_DTYPE, "%s: tensor '%s' must be %s, got %s", op, name, dama_dtype_name(dtype),
                      dama_dtype_name((dama_dtype)t->dtype));
  if (!dama_is_contiguous(t)) return dama_error(DAMA_ERR_ARG, "%s: tensor '%s' must be contiguous", op, name);
  int64_t need = 1;
  for (int32_t i = 0; i < ndims; i++) {
    if (dims[i] < 0) return dama_error(DAMA_ERR_ARG, "%s: a size for '%s' is negative (%lld)", op, name,
                                       (long long)dims[i]);
    if (dims[i] > 0 && need > INT64_MAX / dims[i])
      return dama_error(DAMA_ERR_SHAPE, "%s: the sizes for '%s' overflow a 64-bit element count", op, name);
    need *= dims[i];
  }
  int64_t have = dama_numel(t);
  if (have < need) {
    char sh[160];
    return dama_error(DAMA_ERR_SHAPE, "%s: tensor '%s' of shape %s has %lld elements; the sizes need %lld", op, name,
                      dama_shape_str(t, sh, sizeof sh), (long long)have, (long long)need);
  }
  *ptr = dama_kernel_ptr(t);
  return DAMA_OK;
}
