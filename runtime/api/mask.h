/* dama masking: MAE random masking, DAMA's adaptive mask (Algorithm 1), ids from any 0/1 mask, and the
 * token gather / unshuffle kernels with their backwards. No preprocessor lines (read by ffi.cdef too).
 *
 * Conventions (as runtime/api/nn.h): raw, contiguous, row-major host arrays; outputs first, then inputs,
 * then sizes, then hyper-parameters. Every function returns dama_status with a message naming the
 * function and the argument. Masks are float [N,L], 1 = removed (hidden from the encoder), 0 = visible,
 * in original patch order (patches row-major over the grid). Ids are int64, 0-based:
 *   ids_shuffle[N,L]  patch order: the K visible patches first, in the order the encoder sees them;
 *   ids_restore[N,L]  its inverse permutation (ids_restore[n, ids_shuffle[n,i]] = i);
 *   ids_keep[N,K]     = ids_shuffle[:, :K]; the encoder's token i is patch ids_keep[n,i].
 * ids_keep may be NULL wherever it is an output (it is a copy of ids_shuffle's first K columns).
 * Sorting is stable ascending everywhere (ties: lower patch index first); NaN keys sort after every
 * number, as in torch.sort.
 *
 * Counts are those of the reference, computed in double precision with C truncation, as Python's int():
 *   K = (int64)(L * (1.0 - ratio))    visible patches per sample (L 64, ratio 0.8: 12.799... -> 12)
 *   R = L - 2K,  O = (int64)(K * overlap)    (adaptive mask only; L 64, 0.8, 0.5: R 40, O 6)
 */

/* K = (int64)(L * (1.0 - ratio)). L >= 1, 0 <= ratio <= 1. */
dama_status dama_mask_visible_count(int64_t L, double ratio, int64_t *K);
/* K, R and O of Algorithm 1 (any of the three pointers may be NULL). DAMA_ERR_ARG when R < 0: the mask
 * ratio must leave at most half of the patches visible (K <= L/2, i.e. ratio >= about 0.5), because
 * branch 2 shows branch-1-masked patches. 0 <= overlap <= 1. */
dama_status dama_mask_adaptive_counts(int64_t L, double ratio, double overlap, int64_t *K, int64_t *R, int64_t *O);

/* MAE random masking from noise[N,L] (the reference draws U[0,1)): ids_shuffle = stable argsort(noise),
 * ids_restore = its inverse, ids_keep = ids_shuffle[:, :K], mask[n,l] = 0 for the K lowest-noise patches
 * and 1 elsewhere. ids_shuffle is required; ids_restore, ids_keep and mask may be NULL. 0 <= K <= L. */
dama_status dama_mask_random(float *mask, int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep,
                             const float *noise, int64_t N, int64_t L, int64_t K);

typedef enum dama_adaptive_mode {
  DAMA_ADAPTIVE_PER_SAMPLE = 0, /* the intended rule (default): exactly K zeros per row */
  DAMA_ADAPTIVE_UNION = 1       /* the reference code bit for bit: m2[:, union over the batch of V] = 0 */
} dama_adaptive_mode;

/* DAMA's adaptive mask (Algorithm 1) for branch 2, from branch 1's mask m1[N,L] (0/1 only) and its per-patch
 * loss[N,L] (only read: no gradient flows through the mask). K, R, O as above (R < 0 -> DAMA_ERR_ARG).
 * V[n] = the O lowest-index patches visible in m1[n] (the reference's stable argsort(m1)[:, :O]).
 *
 * DAMA_ADAPTIVE_PER_SAMPLE: each row on its own. m2[n] = 0 at the K - O branch-1-masked patches with the
 *   lowest loss (ties: lower index; NaN counts as the highest) and at V[n]; 1 elsewhere. Every row then has exactly K zeros, and ids_keep2 lists exactly those
 *   patches by increasing index (so m2 = 1 - scatter(ids_keep2)).
 *   Needs at least O visible and K - O masked patches in each row of m1 (true when m1 has K zeros, e.g.
 *   from dama_mask_random with the same ratio); otherwise DAMA_ERR_ARG naming the row. Equals the
 *   reference's code with a per-sample overlap (m2[n, V[n]] = 0) whenever the branch-1-masked losses are
 *   > 0 and m1 has K zeros, which is the training case. It differs where that code misbehaves: zero or
 *   negative scores tie with the visible patches' 0, and R + O = 0 makes its slice [-(R+O):] select every
 *   patch (all ones); here those cases still give the K - O lowest-loss masked patches.
 * DAMA_ADAPTIVE_UNION: the reference exactly. s = loss * m1 (float); T[n] = the last R + O entries of the
 *   stable argsort(s[n]) (all L of them when R + O = 0, as Python's [-0:]); m2 = 1 - m1; m2[n, T[n]] = 1;
 *   then m2[:, l] = 0 in EVERY row for each l in the union of V over the batch of this call (the reference's
 *   per-GPU batch; at N = 128, L = 64 rows keep 49-63 zeros, and if every entry of m2 became 0 a loss averaged
 *   over removed patches would be 0/0). A row may then have more
 *   than K zeros (ids_keep2 holds the first K zeros by index; the other zeros are neither shown to branch 2
 *   nor counted by its loss) or, for degenerate inputs (scores <= 0, m1 with fewer than O zeros), fewer
 *   than K (ids_keep2 then continues with masked patches by index). m2 is returned as modified, not rebuilt
 *   from ids_keep2, like the reference. With N = 1 both modes agree (for positive masked losses).
 *
 * In both modes ids_shuffle2 = stable argsort(m2) (zeros by increasing index, then ones by increasing
 * index), ids_restore2 its inverse, ids_keep2[N,K] = ids_shuffle2[:, :K]. m2 and ids_shuffle2 are
 * required; ids_restore2 and ids_keep2 may be NULL. overlap in [0, 1]: 0 = no overlap (branch 2 sees the K
 * easiest masked patches), 1 = branch 2 sees branch 1's visible patches (m2 = m1 per sample). */
dama_status dama_mask_adaptive(float *m2, int64_t *ids_shuffle2, int64_t *ids_restore2, int64_t *ids_keep2,
                               const float *m1, const float *loss, int64_t N, int64_t L, double ratio,
                               double overlap, int32_t mode);

/* Check a mask made elsewhere (a Lua function, a file): every entry 0 or 1, and the same number of zeros in
 * every row (the encoder takes [N,K] tokens); writes that number to *K. DAMA_ERR_ARG names the first bad
 * entry, or the first row whose count differs from row 0's. */
dama_status dama_mask_check(const float *mask, int64_t N, int64_t L, int64_t *K);
/* Ids for such a mask (K from dama_mask_check; checked again here): ids_shuffle = the visible patches in
 * increasing index, then the removed ones in increasing index (= stable argsort(mask)); ids_restore its
 * inverse; ids_keep = ids_shuffle[:, :K]. ids_shuffle required, the others may be NULL. */
dama_status dama_mask_ids(int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep, const float *mask,
                          int64_t N, int64_t L, int64_t K);

/* ---- token kernels (float32; OpenMP over tokens) ---- */
/* out[N,K,D]: out[n,k] = x[n, ids_keep[n,k]] for x[N,L,D]; ids in [0, L) (else DAMA_ERR_INDEX). */
dama_status dama_mask_gather_forward(float *out, const float *x, const int64_t *ids_keep, int64_t N, int64_t L,
                                     int64_t K, int64_t D);
/* dx[N,L,D] += dout scattered back: dx[n, ids_keep[n,k]] += dout[n,k] (rows not kept get nothing: zero dx
 * first for the plain gradient). Repeated ids accumulate. */
dama_status dama_mask_gather_backward(float *dx, const float *dout, const int64_t *ids_keep, int64_t N, int64_t L,
                                      int64_t K, int64_t D);
/* MAE decoder input (without cls): out[N,L,D], out[n,l] = tokens[n, j] if j = ids_restore[n,l] < K, else
 * mask_token[D]. tokens[N,K,D] are the encoded visible tokens in ids_shuffle order; ids in [0, L). */
dama_status dama_mask_unshuffle_forward(float *out, const float *tokens, const float *mask_token,
                                        const int64_t *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D);
/* dtokens[N,K,D] += dout[n,l] where ids_restore[n,l] = j < K; dmask_token[D] += the sum of dout over every
 * (n,l) with ids_restore[n,l] >= K. Either gradient may be NULL. */
dama_status dama_mask_unshuffle_backward(float *dtokens, float *dmask_token, const float *dout,
                                         const int64_t *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D);
