// PowerSGD (Vogels et al. 2019), docs/algorithms.md §2: rank-r power iteration per layer.
//
// Two ways to run it:
//  - mode reduce (the paper's): P = sum_i M_i Q is all-reduced, orthonormalised to P_hat, then
//    Q = mean_i M_i^T P_hat is all-reduced; every client's decoded message is P_hat Q^T. The
//    collectives run these steps (exchange/powersgd_allreduce.*); the functions below do the maths.
//  - mode per_client: each client runs its own power step and sends P_hat_i, Q_i
//    (PowerSgdCompressor), so any aggregator can combine the decoded messages.
// Matrices are row-major float32: M rows x cols, P rows x r, Q cols x r. The products' sums run in
// an order fixed by the indices alone (Note [PowerSGD lanes] in powersgd.cpp), so every ISA path,
// buffer address and rank count gives the same bits; their pass structure, with error feedback
// fused in, is Note [PowerSGD passes].
//
// Note [PowerSGD rank]
// In exact arithmetic PowerSGD reconstructs an exactly rank-k matrix whenever r' >= k
// (docs/algorithms.md §7 asks it only for r' = k). In float32 with the reference Gram-Schmidt
// (column / (norm + 1e-8), no re-orthogonalisation, as in the PowerSGD reference code) it does
// for r' = k, but for r' > k the extra columns of P are pure rounding noise that normalisation
// scales up to unit length and that is no longer orthogonal to the first k, so the
// reconstruction error is O(1) (0.01-0.8 relative on a 6 x 5 rank-2 matrix over seeds). cohort
// keeps the reference behaviour; the tests hold r' = k exactly and r' > k only when Q's extra
// columns lie in M's null space.
#pragma once

#include <cstdint>

#include "compress/compressor.h"

namespace cohort::compress::powersgd {

// Layers with rows >= 2 and cols >= 2 are compressed; smaller ones go as float32.
bool compressible(std::int64_t rows, std::int64_t cols);
// r' = min(rows, cols, rank).
int effective_rank(std::int64_t rows, std::int64_t cols, int rank);
// The ISA path the products take (Note [One ISA decision]), for the benchmarks.
const char* kernel_isa();
// The starting Q (cols x r): i.i.d. N(0, 1) from the layer's shared stream, row-major order.
void initial_q(const MessageContext& ctx, const LayerShape& layer, int r, float* q);
// P = M Q.
void multiply_p(const float* m, const float* q, std::int64_t rows, std::int64_t cols, int r,
                float* p);
// Gram-Schmidt in place, column by column: column <- column / (||column|| + 1e-8), then its
// component is removed from every later column.
void orthonormalize(float* p, std::int64_t rows, int r);
// Q = M^T P_hat.
void multiply_q(const float* m, const float* p_hat, std::int64_t rows, std::int64_t cols, int r,
                float* q);
// out = P_hat Q^T (rows x cols, overwritten).
void reconstruct(const float* p_hat, const float* q, std::int64_t rows, std::int64_t cols, int r,
                 float* out);
// One power step on M = u + e with error feedback fused in (Note [PowerSGD passes]): q holds the
// starting Q on entry and the new Q on return, p_hat receives P_hat, decoded = P_hat Q^T and
// e <- M - decoded. Returns max |M_ij| (NaN when M has a NaN). Bitwise the same as m = u + e;
// multiply_p(m, q) -> P; orthonormalize(P); multiply_q(m, P_hat) -> Q; reconstruct(P_hat, Q) ->
// decoded; e = m - decoded. r >= 1; the buffers must not overlap.
float power_step_with_feedback(const float* u, float* e, std::int64_t rows, std::int64_t cols,
                               int r, float* q, float* p_hat, float* decoded);

// mode per_client: wire per compressible layer = r'(rows + cols) float32 (P_hat then Q);
// other layers = rows*cols float32. With warm_start the client's previous Q (its state) is the
// starting Q; otherwise (and at a client's first message) the shared stream's.
class PowerSgdCompressor final : public Compressor {
 public:
  PowerSgdCompressor(int rank, bool warm_start) : rank_(rank), warm_start_(warm_start) {}
  std::string name() const override { return "powersgd"; }
  void encode_layer(std::span<const float> v, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> state, Rng& private_rng, BitWriter& out) const override;
  void decode_layer(BitReader& in, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> out) const override;
  // The same wire bytes, decoded values and error memory as the definition, in three passes
  // over the layer (power_step_with_feedback).
  bool fuses_error_feedback() const override { return true; }
  float encode_layer_with_feedback(std::span<const float> v, std::span<float> e,
                                   const LayerShape& layer, const MessageContext& ctx,
                                   std::span<float> state, Rng& private_rng, BitWriter& out,
                                   std::span<float> decoded) const override;
  // warm start: Q (cols x r') plus one flag float (nonzero once Q holds a previous round's Q).
  std::int64_t state_floats(const LayerShape& layer) const override;

 private:
  // Whether the layer's state is kept (warm start and a non-empty state of the right size).
  bool keeps_state(const LayerShape& layer, std::span<const float> state) const;
  // The starting Q: the client's previous Q when kept, else the layer's shared stream's.
  void starting_q(const LayerShape& layer, const MessageContext& ctx, std::span<const float> state,
                  int r, float* q) const;
  int rank_;
  bool warm_start_;
};

// Its options, schema entry and factory (Note [Compressor options]).
CompressorRegistration registration();

}  // namespace cohort::compress::powersgd
