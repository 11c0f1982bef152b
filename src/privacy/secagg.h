// Secure aggregation of federated rounds (docs/algorithms.md §6): the protocol of Bonawitz et
// al. (CCS 2017) run for real between simulated clients and a simulated server.
//
// Note [Secure aggregation]
// secagg.name = bonawitz. Each round runs the protocol among the round's n sampled clients, so
// that the server learns the sum of their quantized updates and nothing else about any one of
// them (the paper's honest-but-curious version: four steps, without the consistency check and
// the signatures that an actively malicious server calls for):
//  1. keys: client u derives two X25519 key pairs (libsodium crypto_kx) from 64 bytes of its
//     (seed, round, u, kSecaggKeys) stream: c_u for pairwise masks, s_u for encrypting shares,
//     and a 32-byte self-mask seed b_u from its kSecaggMasks stream. It sends both public keys;
//     the server relays every key to every client.
//  2. shares: u splits b_u and its mask secret key c_u^SK into n Shamir shares of threshold t
//     (below), one for each client v of the round at x = v + 1 (its own included), with the
//     polynomials' coefficients from its kSecaggShares stream. The share for v ≠ u travels
//     through the server encrypted with ChaCha20-Poly1305 (IETF) under the crypto_kx session key
//     of the pair (s_u, s_v), nonce (round, u, v), and v checks the sender and recipient inside.
//  3. masking: u clips its update to C (privacy.clip under dp_fedavg, else secagg.clip), adds
//     its distributed DP noise if any, quantizes each coordinate to round(x 2^f) clamped to
//     ±floor(R 2^f) (R below) as int32 stored as uint32 two's complement, and sends
//     y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv) mod 2^32, where s_uv is
//     the crypto_kx session key of (c_u, c_v) (the lower id in the client role, its tx key) and
//     PRG(k) is the ChaCha20 key stream of k with nonce = round, read as little-endian uint32.
//     u then drops out with probability secagg.dropout (the first draw of its kSecaggDropout
//     stream), in which case y_u never reaches the server: its pairwise masks stay in the other
//     clients' vectors. A client whose y_u arrived leaves before step 4 with probability
//     secagg.late_dropout (the second draw): its update is in the sum, but it sends no shares.
//  4. unmasking: the server announces the survivors S (those whose y arrived); the responders
//     R within S answer. With |R| < t it aborts: the round changes nothing (Note [DP-FedAvg]'s
//     accountant still counts it) and /rounds/secagg_aborted is 1. Otherwise every responder v
//     sends, for each client u of the round, its share of b_u if u is in S and of c_u^SK if not;
//     the server takes the shares of the t responders with the lowest ids, interpolates each
//     secret at 0 (Lagrange), checks a reconstructed c_u^SK against c_u's public key, and
//     subtracts from sum_{v in S} y_v every survivor's PRG(b_u) and, for every dropped u and
//     survivor v, the mask ±PRG(s_uv) that v added. What it reconstructs comes from shares only,
//     never from the clients' secrets. The result, read as int32, is the exact sum of the
//     survivors' quantized updates, and the round goes on with sum / 2^f in place of the plain sum
//     of clipped updates (then central DP noise, the division by q N or by |S|, the server
//     optimizer).
// Shamir's scheme works over the prime field p = 2^61 - 1 (a Mersenne prime: reduction by shifts)
// on each 7-byte chunk of a 32-byte secret (5 chunks; a share is 5 field elements, 40 bytes);
// fewer than t shares interpolate to an unrelated value. t = secagg.threshold, or with 0 a
// majority of the round's clients, floor(n / 2) + 1.
// Fixed point: R = C, or C (1 + 8 sigma) with distributed noise (a client's noise has standard
// deviation sigma C / sqrt(m) <= sigma C); f = secagg.fraction_bits, or with 0 the largest f with
// n_max R 2^f < 2^31, n_max the most clients a round can sample. Each quantized coordinate is at
// most floor(R 2^f) in size, so the sum of at most n_max of them never wraps int32: the config
// check holds it, and the clamp (which binds only for noise beyond 8 standard deviations) makes it
// unconditional. The decoded sum is within n 2^-(f+1) of the sum of the clipped updates. A NaN
// coordinate is quantized as 0 and an infinite one as the end of the range, so the protocol
// never fails on them; the round loop all-reduces one bit, whether any submitted update held a
// non-finite value, and ends the run as diverged, as the plain exchange would.
// Simulation: every rank runs its own clients' side; the server's work on client u's secrets
// (its reconstruction and the masks it regenerates) runs on u's rank, and its results are summed
// over ranks. Sums mod 2^32 are all-reduced exactly as int64 (each rank's partial sum is below
// 2^32) and reduced mod 2^32 afterwards, so any order and any rank count give the same bits.
// Encrypted shares and unmasking responses travel between ranks in one all-to-all each (their
// bytes carried as 4-byte words): each rank receives only what is addressed to its clients. The
// recorded bytes are the protocol's, as if every message went through the server, not the
// simulation's transport: per client, step 1 sends 64 bytes and receives (n - 1) 68 (keys and
// ids), step 2 sends and receives (n - 1) 108 (ciphertext, tag and recipient id), step 3 sends
// 4 d when delivered, step 4 sends a survivor the list of S (4 |S|) and a responder sends n 44
// bytes (share and id). The server receives what the clients send and sends what they receive.
// /rounds/secagg_transcript is a 48-bit BLAKE2b digest of every message in client order (keys,
// ciphertexts, masked vectors, responses) and of the unmasked sum: equal digests at 1, 2 and 4
// ranks mean the same protocol run.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/config.h"
#include "core/rng.h"
#include "core/schema.h"

namespace cohort::privacy {

struct SecaggOptions {
  bool enabled = false;     // secagg.name = bonawitz
  int threshold = 0;        // t; 0: a majority of each round's clients
  double dropout = 0;       // p
  double late_dropout = 0;  // p_late
  int fraction_bits = 0;    // f, resolved
  double clip = 0;          // C that bounds the updates
  bool own_clip = false;    // secagg.clip clips (privacy.name = none)
  double range = 0;         // R, the largest coordinate before quantization
  int max_clients = 0;      // n_max
  // The secagg.* keys and their checks against the rest of the config (UsageError naming the
  // key and what is allowed).
  static SecaggOptions from_config(const Config& cfg);
  // t for a round of n clients.
  int threshold_for(int n) const { return threshold > 0 ? threshold : n / 2 + 1; }
  std::string describe() const;
};

Section secagg_section();

// The largest f in [1, 30] with n R 2^f < 2^31, or 0 when none.
int auto_fraction_bits(double range, int max_clients);

// Shamir's secret sharing of 32-byte secrets over GF(2^61 - 1), chunk by chunk.
namespace shamir {
inline constexpr std::uint64_t kPrime = (std::uint64_t{1} << 61) - 1;
inline constexpr int kChunks = 5;  // 7-byte chunks of 32 bytes
using Secret = std::array<std::uint8_t, 32>;
using Share = std::array<std::uint64_t, kChunks>;
// The shares of `secret` at the distinct points xs (1 <= x < p) of random polynomials of degree
// t - 1 (coefficients drawn from rng) whose constant terms are the chunks.
std::vector<Share> split(const Secret& secret, std::span<const std::uint64_t> xs, int t, Rng& rng);
// The Lagrange coefficients at 0 of the distinct points xs.
std::vector<std::uint64_t> lagrange_at_zero(std::span<const std::uint64_t> xs);
// The secret interpolated at 0 from shares at xs with the coefficients of lagrange_at_zero(xs).
Secret combine(std::span<const std::uint64_t> coefficients, std::span<const Share> shares);
// Both steps; the right secret when the shares are at least t of one split.
Secret combine_points(std::span<const std::uint64_t> xs, std::span<const Share> shares);
}  // namespace shamir

// What one round of the protocol did and cost (identical on every rank).
struct SecaggReport {
  // survivors: the clients whose masked vectors arrived (their updates are the sum);
  // responders: those of them that answered the unmasking step.
  int clients = 0, survivors = 0, responders = 0, threshold = 0;
  bool aborted = false;
  // Protocol bytes of each sampled client (in the order of the round's sample), and their means.
  std::vector<std::int64_t> client_sent, client_received;
  double mean_sent = 0, mean_received = 0;
  double server_sent = 0, server_received = 0;
  // Compute seconds: the clients' phases as the mean over the round's clients, the server's
  // unmasking in total (its share on every rank, summed).
  double time_keys = 0, time_shares = 0, time_masking = 0, time_unmasking = 0;
  std::uint64_t transcript = 0;  // 48 bits
};

// One run's secure aggregation, a round at a time: begin_round, submit for each of this rank's
// sampled clients, finish (Note [Secure aggregation]).
class SecureAggregation {
 public:
  SecureAggregation(const SecaggOptions& o, comm::Communicator& comm, std::uint64_t seed,
                    std::int64_t d);
  ~SecureAggregation();
  SecureAggregation(const SecureAggregation&) = delete;
  SecureAggregation& operator=(const SecureAggregation&) = delete;
  // Collective: steps 1 and 2 for the round's sampled clients (sorted ascending, non-empty), of
  // which this rank owns the ids in [first, last).
  void begin_round(std::uint32_t round, std::span<const int> sampled, int first, int last);
  // Step 3 for client c of this rank: quantizes the update (d values, already clipped), masks it
  // and delivers it unless c drops out. A client never submitted counts as dropped.
  void submit(int c, std::span<const float> update);
  // Collective: step 4. False when the round aborted (fewer than t survivors); otherwise sum()
  // holds the survivors' quantized sum.
  bool finish();
  // The last finish's unmasked sum, as int32 (d values).
  std::span<const std::int32_t> sum() const { return sum_; }
  // g[j] = sum[j] / 2^f / divisor.
  void decode(float* g, double divisor) const;
  // The last submitted client's masked vector y (what the server sees of it) and its
  // quantized input x.
  std::span<const std::uint32_t> last_masked() const { return masked_; }
  std::span<const std::uint32_t> last_quantized() const { return quantized_; }
  // Whether client c of the round dropped out (after submit; this rank's clients).
  bool dropped(int c) const;
  const SecaggReport& report() const { return report_; }
  const SecaggOptions& options() const { return o_; }

 private:
  struct Impl;
  SecaggOptions o_;
  comm::Communicator& comm_;
  std::uint64_t seed_;
  std::int64_t d_;
  std::vector<std::int32_t> sum_;
  std::vector<std::uint32_t> masked_, quantized_;
  SecaggReport report_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cohort::privacy
