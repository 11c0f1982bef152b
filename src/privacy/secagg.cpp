#include "privacy/secagg.h"

#include <fmt/format.h>
#include <sodium.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "algo/sampling.h"
#include "core/errors.h"
#include "core/registration.h"
#include "robust/aggregator.h"

namespace cohort::privacy {

static_assert(std::endian::native == std::endian::little,
              "masks are read as little-endian 32-bit words");

Section secagg_section() {
  using R = Registration<void()>;
  static const std::vector<R> list = {
      {"none", "no secure aggregation: the server sees every client's message", {}, {}},
      {"bonawitz",
       "Bonawitz et al. 2017: clients quantize their clipped updates to integers mod 2^32 and "
       "mask them with pairwise (X25519) and self masks (ChaCha20) whose seeds are Shamir-shared "
       "with threshold t; the server unmasks only the sum (Note [Secure aggregation])",
       {opt_int("threshold", 0,
                "t: shares needed to unmask; the round aborts when fewer clients answer; 0: a "
                "majority of each round's clients, floor(n/2) + 1",
                0),
        opt_float("dropout", 0.0,
                  "probability that a client drops out after masking, before its masked vector "
                  "arrives (its own keyed draw)",
                  0, 1),
        opt_float("late_dropout", 0.0,
                  "probability that a client whose masked vector arrived leaves before the "
                  "unmasking step, sending no shares (its own second draw)",
                  0, 1),
        opt_int("fraction_bits", 0,
                "f: updates are quantized to round(x 2^f); 0: the largest f with (clients per "
                "round) R 2^f < 2^31, R = clip (times 1 + 8 sigma with distributed noise)",
                0, 30),
        opt_float("clip", 0.0,
                  "clipping bound C of a client's update when privacy.name = none (must be > 0 "
                  "then); 0 under dp_fedavg, whose privacy.clip is used",
                  0)},
       {}},
  };
  return slot_section("secagg", "Secure aggregation (docs/algorithms.md §6).", "none", list);
}

int auto_fraction_bits(double range, int max_clients) {
  for (int f = 30; f >= 1; --f)
    if (static_cast<double>(max_clients) * range * std::ldexp(1.0, f) < 0x1.0p31) return f;
  return 0;
}

SecaggOptions SecaggOptions::from_config(const Config& cfg) {
  SecaggOptions o;
  if (cfg.get_string("secagg.name") != "bonawitz") return o;
  o.enabled = true;
  const std::string what = "secagg.name = bonawitz";
  const std::string algorithm = cfg.get_string("algorithm.name");
  require_usage(algorithm == "fedavg" || algorithm == "fedprox",
                what +
                    " masks each client's model update x - y_i: algorithm.name must be fedavg "
                    "or fedprox, not " +
                    algorithm);
  const std::string rule = cfg.get_string("aggregator.name");
  require_usage(rule == "mean",
                what +
                    " reveals only the sum of the clients' updates, never one of them: "
                    "aggregator.name = " +
                    rule + " needs the individual messages; use mean");
  require_usage(!cfg.get_bool("aggregator.weighted"),
                what +
                    " sums the updates as they are, which the server cannot weigh once masked: "
                    "set aggregator.weighted = false");
  const std::string compressor = cfg.get_string("compressor.name");
  require_usage(compressor == "none",
                what + " sums quantized vectors mod 2^32: compressor.name = " + compressor +
                    " encodes each client's message on its own, and the sum of masked encodings "
                    "is not an encoding of the sum; use none");
  require_usage(cfg.get_string("attack.name") == "none",
                what +
                    " hides the individual messages that the attacks craft theirs from: "
                    "attack.name must be none");
  const std::string personal = cfg.get_string("personalization.name");
  require_usage(personal != "ifca" && personal != "local",
                what + " aggregates one global model: personalization.name = " + personal +
                    " is not supported (none, finetune and ditto are)");
  o.max_clients =
      algo::clients_per_round(cfg, static_cast<int>(cfg.get_int("clients.num_clients")));
  const long long t = cfg.get_int("secagg.threshold");
  require_usage(t <= o.max_clients,
                fmt::format("secagg.threshold = {} exceeds the {} clients a round can sample: "
                            "allowed 1 to {}, or 0 for a majority of each round's clients",
                            t, o.max_clients, o.max_clients));
  o.threshold = static_cast<int>(t);
  o.dropout = cfg.get_float("secagg.dropout");
  require_usage(o.dropout < 1, fmt::format("secagg.dropout = {} is not allowed: a probability in "
                                           "[0, 1)",
                                           o.dropout));
  o.late_dropout = cfg.get_float("secagg.late_dropout");
  require_usage(o.late_dropout < 1, fmt::format("secagg.late_dropout = {} is not allowed: a "
                                                "probability in [0, 1)",
                                                o.late_dropout));
  const bool dp = cfg.get_string("privacy.name") == "dp_fedavg";
  const double own_clip = cfg.get_float("secagg.clip");
  if (dp) {
    require_usage(own_clip == 0,
                  "secagg.clip must be 0 with privacy.name = dp_fedavg, whose "
                  "privacy.clip bounds the updates");
    o.clip = cfg.get_float("privacy.clip");
  } else {
    require_usage(own_clip > 0, what +
                                    " quantizes updates clipped to a bound: set secagg.clip > "
                                    "0 (or use privacy.name = dp_fedavg, whose clip it takes)");
    o.clip = own_clip;
    o.own_clip = true;
  }
  const bool distributed = dp && cfg.get_string("privacy.noise") == "distributed";
  o.range = distributed ? o.clip * (1 + 8 * cfg.get_float("privacy.noise_multiplier")) : o.clip;
  const int most = auto_fraction_bits(o.range, o.max_clients);
  const long long f = cfg.get_int("secagg.fraction_bits");
  require_usage(most >= 1,
                fmt::format("{}: {} clients per round with updates up to R = {:g} leave no "
                            "fraction bit below 2^31 (n R 2^f < 2^31 needs f >= 1): lower the "
                            "clipping bound or the clients per round",
                            what, o.max_clients, o.range));
  require_usage(f <= most,
                fmt::format("secagg.fraction_bits = {} would let the sum of {} clients' updates "
                            "up to R = {:g} wrap 2^31: allowed 1 to {} (or 0: the largest)",
                            f, o.max_clients, o.range, most));
  o.fraction_bits = f > 0 ? static_cast<int>(f) : most;
  return o;
}

std::string SecaggOptions::describe() const {
  if (!enabled) return "none";
  return fmt::format(
      "bonawitz: threshold {}, dropout {:g} (late {:g}), {} fraction bits, clip C = {:g}{}, "
      "range R = {:g}, up to {} clients per round",
      threshold > 0 ? std::to_string(threshold) : "majority", dropout, late_dropout, fraction_bits,
      clip, own_clip ? " (secagg.clip)" : " (privacy.clip)", range, max_clients);
}

// ---- Shamir over GF(2^61 - 1) ----------------------------------------------------------------
namespace shamir {
namespace {

std::uint64_t add(std::uint64_t a, std::uint64_t b) {
  std::uint64_t s = a + b;  // < 2^62
  return s >= kPrime ? s - kPrime : s;
}
std::uint64_t sub(std::uint64_t a, std::uint64_t b) { return a >= b ? a - b : a + kPrime - b; }
std::uint64_t mul(std::uint64_t a, std::uint64_t b) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  const std::uint64_t lo = static_cast<std::uint64_t>(p) & kPrime;
  const std::uint64_t hi = static_cast<std::uint64_t>(p >> 61);
  return add(lo, hi);
}
std::uint64_t inverse(std::uint64_t a) {  // a^(p - 2)
  std::uint64_t r = 1, e = kPrime - 2;
  while (e > 0) {
    if (e & 1) r = mul(r, a);
    a = mul(a, a);
    e >>= 1;
  }
  return r;
}

}  // namespace

std::vector<Share> split(const Secret& secret, std::span<const std::uint64_t> xs, int t, Rng& rng) {
  std::vector<Share> shares(xs.size());
  std::vector<std::uint64_t> coef(static_cast<std::size_t>(t));
  for (int k = 0; k < kChunks; ++k) {
    std::uint64_t chunk = 0;
    for (int b = 0; b < 7 && 7 * k + b < 32; ++b)
      chunk |= static_cast<std::uint64_t>(secret[static_cast<std::size_t>(7 * k + b)]) << (8 * b);
    coef[0] = chunk;
    for (int i = 1; i < t; ++i) coef[static_cast<std::size_t>(i)] = rng.below(kPrime);
    for (std::size_t s = 0; s < xs.size(); ++s) {  // Horner
      std::uint64_t y = coef[static_cast<std::size_t>(t - 1)];
      for (int i = t - 2; i >= 0; --i) y = add(mul(y, xs[s]), coef[static_cast<std::size_t>(i)]);
      shares[s][static_cast<std::size_t>(k)] = y;
    }
  }
  return shares;
}

std::vector<std::uint64_t> lagrange_at_zero(std::span<const std::uint64_t> xs) {
  std::vector<std::uint64_t> l(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) {
    std::uint64_t num = 1, den = 1;
    for (std::size_t j = 0; j < xs.size(); ++j) {
      if (j == i) continue;
      num = mul(num, xs[j]);
      den = mul(den, sub(xs[j], xs[i]));
    }
    l[i] = mul(num, inverse(den));
  }
  return l;
}

Secret combine(std::span<const std::uint64_t> coefficients, std::span<const Share> shares) {
  Secret s{};
  for (int k = 0; k < kChunks; ++k) {
    std::uint64_t chunk = 0;
    for (std::size_t i = 0; i < shares.size(); ++i)
      chunk = add(chunk, mul(coefficients[i], shares[i][static_cast<std::size_t>(k)]));
    for (int b = 0; b < 7 && 7 * k + b < 32; ++b)
      s[static_cast<std::size_t>(7 * k + b)] = static_cast<std::uint8_t>(chunk >> (8 * b));
  }
  return s;
}

Secret combine_points(std::span<const std::uint64_t> xs, std::span<const Share> shares) {
  return combine(lagrange_at_zero(xs), shares);
}

}  // namespace shamir

// ---- the protocol ----------------------------------------------------------------------------
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

using Key = std::array<std::uint8_t, 32>;
constexpr std::size_t kShareBytes = sizeof(shamir::Share);  // 40
constexpr std::size_t kPlainBytes = 8 + 2 * kShareBytes;    // ids and two shares
constexpr std::size_t kCipherBytes = kPlainBytes + crypto_aead_chacha20poly1305_IETF_ABYTES;
static_assert(kCipherBytes % 4 == 0 && kShareBytes % 4 == 0, "carried as 4-byte words");
// Protocol bytes (Note [Secure aggregation]).
constexpr std::int64_t kKeysSent = 64, kKeyRelayed = 68, kCipherOnWire = kCipherBytes + 4,
                       kResponseItem = kShareBytes + 4;

Key random_key(Rng& rng) {
  Key k;
  for (std::size_t i = 0; i < k.size(); i += 4) {
    const std::uint32_t w = rng.next_u32();
    std::memcpy(k.data() + i, &w, 4);
  }
  return k;
}

// crypto_kx session keys of `me` (the client role when me_id < other_id) with `other`: the key
// me sends with (tx) and the one it receives with (rx). The pair's two sides get the same two
// keys, swapped.
void session_keys(int me_id, const Key& me_pk, const Key& me_sk, int other_id, const Key& other_pk,
                  Key& rx, Key& tx) {
  const int rc = me_id < other_id
                     ? crypto_kx_client_session_keys(rx.data(), tx.data(), me_pk.data(),
                                                     me_sk.data(), other_pk.data())
                     : crypto_kx_server_session_keys(rx.data(), tx.data(), me_pk.data(),
                                                     me_sk.data(), other_pk.data());
  if (rc != 0) throw std::logic_error("secure aggregation: a public key was rejected");
}

// The pairwise mask seed s_uv, the same from either side: the lower id's tx key.
Key mask_seed(int me_id, const Key& me_pk, const Key& me_sk, int other_id, const Key& other_pk) {
  Key rx, tx;
  session_keys(me_id, me_pk, me_sk, other_id, other_pk, rx, tx);
  return me_id < other_id ? tx : rx;
}

// acc += sign PRG(key) mod 2^32 over d words; buf is scratch of 4 d bytes.
void add_prg(std::uint32_t* acc, std::int64_t d, const Key& key, std::uint32_t round, int sign,
             std::vector<std::uint8_t>& buf) {
  std::uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {};
  std::memcpy(nonce, &round, 4);
  buf.resize(static_cast<std::size_t>(d) * 4);
  crypto_stream_chacha20(buf.data(), buf.size(), nonce, key.data());
  const auto* w = reinterpret_cast<const std::uint32_t*>(buf.data());
  if (sign > 0)
    for (std::int64_t j = 0; j < d; ++j) acc[j] += w[j];
  else
    for (std::int64_t j = 0; j < d; ++j) acc[j] -= w[j];
}

void put_u32(std::uint8_t* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
std::uint32_t get_u32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The exact sum over ranks of uint32 vectors mod 2^32: each rank's partial sum as int64 (ranks
// times 2^32 cannot overflow), reduced mod 2^32 after.
void allreduce_mod32(comm::Communicator& comm, std::vector<std::uint32_t>& v) {
  std::vector<std::int64_t> w(v.begin(), v.end());
  comm.allreduce(comm::View{w.data(), static_cast<std::int64_t>(w.size()), comm::DType::kI64},
                 comm::ReduceOp::kSum);
  for (std::size_t j = 0; j < v.size(); ++j) v[j] = static_cast<std::uint32_t>(w[j]);
}

}  // namespace

struct SecureAggregation::Impl {
  std::uint32_t round = 0;
  std::vector<int> sampled;
  int n = 0, lo = 0, hi = 0;                        // this rank's clients are positions [lo, hi)
  std::vector<int> rank_lo, rank_hi;                // every rank's positions
  std::vector<Key> c_pk, s_pk;                      // every client's public keys
  std::vector<Key> c_sk, s_sk, b;                   // this rank's clients' secrets
  std::vector<Key> rx;                              // (local k, sender position u): the share key
  std::vector<shamir::Share> held_b, held_sk;       // (local k, owner position u): k's shares
  std::vector<std::uint8_t> submitted, gone, late;  // per local client
  std::vector<crypto_generichash_state> digest;     // per local client
  std::vector<std::uint32_t> acc;                   // this rank's delivered masked vectors, summed
  std::vector<std::uint8_t> buf;
  double t_keys = 0, t_shares = 0, t_masking = 0;

  int position(int c) const {
    const auto it = std::lower_bound(sampled.begin(), sampled.end(), c);
    if (it == sampled.end() || *it != c)
      throw std::logic_error(fmt::format("secure aggregation: client {} is not in the round", c));
    return static_cast<int>(it - sampled.begin());
  }
  // An all-to-all of bytes (their 4-byte words carried as floats, bits untouched): send[r] goes
  // to rank r; recv_bytes[r] is what rank r sends here.
  std::vector<std::uint8_t> exchange(comm::Communicator& comm,
                                     const std::vector<std::vector<std::uint8_t>>& send,
                                     const std::vector<std::int64_t>& recv_bytes) {
    const auto ranks = send.size();
    std::vector<const float*> ptr(ranks);
    std::vector<std::int64_t> sc(ranks), rc(ranks);
    std::int64_t total = 0;
    for (std::size_t r = 0; r < ranks; ++r) {
      ptr[r] = reinterpret_cast<const float*>(send[r].data());
      sc[r] = static_cast<std::int64_t>(send[r].size() / 4);
      rc[r] = recv_bytes[r] / 4;
      total += recv_bytes[r];
    }
    std::vector<std::uint8_t> recv(static_cast<std::size_t>(total));
    comm.alltoallv(ptr, sc, reinterpret_cast<float*>(recv.data()), rc);
    return recv;
  }
};

SecureAggregation::SecureAggregation(const SecaggOptions& o, comm::Communicator& comm,
                                     std::uint64_t seed, std::int64_t d)
    : o_(o), comm_(comm), seed_(seed), d_(d), impl_(std::make_unique<Impl>()) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
}

SecureAggregation::~SecureAggregation() = default;

void SecureAggregation::begin_round(std::uint32_t round, std::span<const int> sampled, int first,
                                    int last) {
  Impl& m = *impl_;
  m.round = round;
  m.sampled.assign(sampled.begin(), sampled.end());
  m.n = static_cast<int>(sampled.size());
  const int n = m.n;
  m.lo =
      static_cast<int>(std::lower_bound(sampled.begin(), sampled.end(), first) - sampled.begin());
  m.hi = static_cast<int>(std::lower_bound(sampled.begin(), sampled.end(), last) - sampled.begin());
  const int local = m.hi - m.lo;
  const int t = o_.threshold_for(n);
  {  // every rank's positions (blocks of ascending ids: rank order is position order)
    const std::int32_t mine[2] = {m.lo, m.hi};
    const auto parts = comm_.allgather_bytes(
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(mine), 8));
    m.rank_lo.clear();
    m.rank_hi.clear();
    for (const auto& p : parts) {
      m.rank_lo.push_back(static_cast<int>(get_u32(p.data())));
      m.rank_hi.push_back(static_cast<int>(get_u32(p.data() + 4)));
    }
  }
  report_ = SecaggReport{};
  report_.clients = n;
  report_.threshold = t;

  // Step 1: key pairs and the self-mask seed; the public keys go to everyone.
  auto t0 = Clock::now();
  m.c_sk.assign(static_cast<std::size_t>(local), Key{});
  m.s_sk.assign(static_cast<std::size_t>(local), Key{});
  m.b.assign(static_cast<std::size_t>(local), Key{});
  m.digest.assign(static_cast<std::size_t>(local), crypto_generichash_state{});
  std::vector<std::uint8_t> pks(static_cast<std::size_t>(local) * 64);
  for (int k = 0; k < local; ++k) {
    const auto kk = static_cast<std::size_t>(k);
    const auto c = static_cast<std::uint32_t>(m.sampled[static_cast<std::size_t>(m.lo + k)]);
    Rng keys(seed_, round, c, Purpose::kSecaggKeys);
    const Key c_seed = random_key(keys), s_seed = random_key(keys);
    crypto_kx_seed_keypair(pks.data() + 64 * kk, m.c_sk[kk].data(), c_seed.data());
    crypto_kx_seed_keypair(pks.data() + 64 * kk + 32, m.s_sk[kk].data(), s_seed.data());
    Rng masks(seed_, round, c, Purpose::kSecaggMasks);
    m.b[kk] = random_key(masks);
    crypto_generichash_init(&m.digest[kk], nullptr, 0, 32);
    crypto_generichash_update(&m.digest[kk], pks.data() + 64 * kk, 64);
  }
  m.t_keys = seconds_since(t0);
  const auto all = comm_.allgather_bytes(pks);
  m.c_pk.clear();
  m.s_pk.clear();
  for (const auto& part : all)
    for (std::size_t i = 0; i + 64 <= part.size(); i += 64) {
      Key a, s;
      std::memcpy(a.data(), part.data() + i, 32);
      std::memcpy(s.data(), part.data() + i + 32, 32);
      m.c_pk.push_back(a);
      m.s_pk.push_back(s);
    }
  if (static_cast<int>(m.c_pk.size()) != n)
    throw std::logic_error("secure aggregation: the ranks disagree on the round's clients");

  // Step 2: Shamir shares of b_u and c_u^SK for every client, encrypted for each recipient.
  t0 = Clock::now();
  const int ranks = comm_.size();
  std::vector<std::uint64_t> xs(static_cast<std::size_t>(n));
  for (int v = 0; v < n; ++v)
    xs[static_cast<std::size_t>(v)] =
        static_cast<std::uint64_t>(m.sampled[static_cast<std::size_t>(v)]) + 1;
  const std::size_t held = static_cast<std::size_t>(local) * static_cast<std::size_t>(n);
  m.rx.assign(held, Key{});
  m.held_b.assign(held, shamir::Share{});
  m.held_sk.assign(held, shamir::Share{});
  std::vector<std::vector<std::uint8_t>> send(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    const int others =
        m.rank_hi[static_cast<std::size_t>(r)] - m.rank_lo[static_cast<std::size_t>(r)];
    send[static_cast<std::size_t>(r)].reserve(static_cast<std::size_t>(local) *
                                              static_cast<std::size_t>(others) * kCipherBytes);
  }
  std::uint8_t plain[kPlainBytes], nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES] = {};
  for (int k = 0; k < local; ++k) {
    const auto kk = static_cast<std::size_t>(k);
    const int u = m.lo + k;
    const int uid = m.sampled[static_cast<std::size_t>(u)];
    Rng coef(seed_, round, static_cast<std::uint32_t>(uid), Purpose::kSecaggShares);
    const auto sb = shamir::split(m.b[kk], xs, t, coef);
    const auto ssk = shamir::split(m.c_sk[kk], xs, t, coef);
    // Its own shares stay with it.
    m.held_b[kk * static_cast<std::size_t>(n) + static_cast<std::size_t>(u)] =
        sb[static_cast<std::size_t>(u)];
    m.held_sk[kk * static_cast<std::size_t>(n) + static_cast<std::size_t>(u)] =
        ssk[static_cast<std::size_t>(u)];
    const Key& my_pk = m.s_pk[static_cast<std::size_t>(u)];
    for (int r = 0; r < ranks; ++r) {
      auto& out = send[static_cast<std::size_t>(r)];
      for (int v = m.rank_lo[static_cast<std::size_t>(r)];
           v < m.rank_hi[static_cast<std::size_t>(r)]; ++v) {
        if (v == u) continue;
        const int vid = m.sampled[static_cast<std::size_t>(v)];
        Key rx, tx;
        session_keys(uid, my_pk, m.s_sk[kk], vid, m.s_pk[static_cast<std::size_t>(v)], rx, tx);
        m.rx[kk * static_cast<std::size_t>(n) + static_cast<std::size_t>(v)] = rx;
        put_u32(plain, static_cast<std::uint32_t>(uid));
        put_u32(plain + 4, static_cast<std::uint32_t>(vid));
        std::memcpy(plain + 8, sb[static_cast<std::size_t>(v)].data(), kShareBytes);
        std::memcpy(plain + 8 + kShareBytes, ssk[static_cast<std::size_t>(v)].data(), kShareBytes);
        put_u32(nonce, round);
        put_u32(nonce + 4, static_cast<std::uint32_t>(uid));
        put_u32(nonce + 8, static_cast<std::uint32_t>(vid));
        const std::size_t at = out.size();
        out.resize(at + kCipherBytes);
        unsigned long long len = 0;
        crypto_aead_chacha20poly1305_ietf_encrypt(out.data() + at, &len, plain, kPlainBytes,
                                                  nullptr, 0, nullptr, nonce, tx.data());
        crypto_generichash_update(&m.digest[kk], out.data() + at, kCipherBytes);
      }
    }
  }
  // What each rank receives: from its senders in position order, one ciphertext for each of
  // this rank's clients but the sender itself.
  std::vector<std::int64_t> recv_bytes(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    std::int64_t count = 0;
    for (int u = m.rank_lo[static_cast<std::size_t>(r)]; u < m.rank_hi[static_cast<std::size_t>(r)];
         ++u)
      count += local - (u >= m.lo && u < m.hi ? 1 : 0);
    recv_bytes[static_cast<std::size_t>(r)] = count * static_cast<std::int64_t>(kCipherBytes);
  }
  double t_enc = seconds_since(t0);
  const std::vector<std::uint8_t> recv = m.exchange(comm_, send, recv_bytes);
  t0 = Clock::now();
  std::size_t at = 0;
  for (int u = 0; u < n; ++u) {  // senders in position order (rank order)
    const int uid = m.sampled[static_cast<std::size_t>(u)];
    for (int k = 0; k < local; ++k) {
      const int v = m.lo + k;
      if (v == u) continue;
      const auto kk = static_cast<std::size_t>(k);
      const int vid = m.sampled[static_cast<std::size_t>(v)];
      put_u32(nonce, round);
      put_u32(nonce + 4, static_cast<std::uint32_t>(uid));
      put_u32(nonce + 8, static_cast<std::uint32_t>(vid));
      // The key v receives from u with: v's rx of the pair, computed when v sent to u.
      const Key& key = m.rx[kk * static_cast<std::size_t>(n) + static_cast<std::size_t>(u)];
      unsigned long long len = 0;
      if (crypto_aead_chacha20poly1305_ietf_decrypt(plain, &len, nullptr, recv.data() + at,
                                                    kCipherBytes, nullptr, 0, nonce,
                                                    key.data()) != 0 ||
          len != kPlainBytes || get_u32(plain) != static_cast<std::uint32_t>(uid) ||
          get_u32(plain + 4) != static_cast<std::uint32_t>(vid))
        throw std::logic_error(
            fmt::format("secure aggregation: client {}'s share for client {} "
                        "did not decrypt",
                        uid, vid));
      at += kCipherBytes;
      std::memcpy(m.held_b[kk * static_cast<std::size_t>(n) + static_cast<std::size_t>(u)].data(),
                  plain + 8, kShareBytes);
      std::memcpy(m.held_sk[kk * static_cast<std::size_t>(n) + static_cast<std::size_t>(u)].data(),
                  plain + 8 + kShareBytes, kShareBytes);
    }
  }
  m.t_shares = t_enc + seconds_since(t0);
  m.t_masking = 0;
  m.submitted.assign(static_cast<std::size_t>(local), 0);
  m.gone.assign(static_cast<std::size_t>(local), 0);
  m.late.assign(static_cast<std::size_t>(local), 0);
  m.acc.assign(static_cast<std::size_t>(d_), 0);
  masked_.assign(static_cast<std::size_t>(d_), 0);
  quantized_.assign(static_cast<std::size_t>(d_), 0);
}

void SecureAggregation::submit(int c, std::span<const float> update) {
  Impl& m = *impl_;
  const auto t0 = Clock::now();
  const int u = m.position(c);
  if (u < m.lo || u >= m.hi)
    throw std::logic_error(fmt::format("secure aggregation: client {} is not this rank's", c));
  const auto kk = static_cast<std::size_t>(u - m.lo);
  const double scale = std::ldexp(1.0, o_.fraction_bits);
  const auto bound = static_cast<std::int64_t>(std::floor(o_.range * scale));
  for (std::int64_t j = 0; j < d_; ++j) {
    const double v = static_cast<double>(update[static_cast<std::size_t>(j)]) * scale;
    // NaN counts as 0; anything beyond the range (noise past 8 sigma, infinities) as its end.
    std::int64_t q = 0;
    if (v >= static_cast<double>(bound))
      q = bound;
    else if (v <= -static_cast<double>(bound))
      q = -bound;
    else if (!std::isnan(v))
      q = std::clamp<std::int64_t>(std::llround(v), -bound, bound);
    quantized_[static_cast<std::size_t>(j)] =
        static_cast<std::uint32_t>(static_cast<std::int32_t>(q));
  }
  masked_ = quantized_;
  add_prg(masked_.data(), d_, m.b[kk], m.round, +1, m.buf);
  const Key& my_pk = m.c_pk[static_cast<std::size_t>(u)];
  for (int v = 0; v < m.n; ++v) {
    if (v == u) continue;
    const int vid = m.sampled[static_cast<std::size_t>(v)];
    const Key s = mask_seed(c, my_pk, m.c_sk[kk], vid, m.c_pk[static_cast<std::size_t>(v)]);
    add_prg(masked_.data(), d_, s, m.round, vid > c ? +1 : -1, m.buf);
  }
  m.submitted[kk] = 1;
  Rng drop(seed_, m.round, static_cast<std::uint32_t>(c), Purpose::kSecaggDropout);
  const double early = drop.uniform(), late = drop.uniform();
  m.gone[kk] = early < o_.dropout ? 1 : 0;
  m.late[kk] = !m.gone[kk] && late < o_.late_dropout ? 1 : 0;
  if (!m.gone[kk]) {
    for (std::int64_t j = 0; j < d_; ++j)
      m.acc[static_cast<std::size_t>(j)] += masked_[static_cast<std::size_t>(j)];
    crypto_generichash_update(&m.digest[kk], reinterpret_cast<const std::uint8_t*>(masked_.data()),
                              masked_.size() * 4);
  }
  m.t_masking += seconds_since(t0);
}

bool SecureAggregation::dropped(int c) const {
  const Impl& m = *impl_;
  const int u = m.position(c);
  if (u < m.lo || u >= m.hi) return false;
  const auto kk = static_cast<std::size_t>(u - m.lo);
  return !m.submitted[kk] || m.gone[kk];
}

bool SecureAggregation::finish() {
  Impl& m = *impl_;
  const int n = m.n, local = m.hi - m.lo, ranks = comm_.size();
  const auto nn = static_cast<std::size_t>(n);
  // Who delivered (bit 0) and who answers step 4 (bit 1): the server's view, the same on every
  // rank.
  std::vector<std::uint8_t> mine(static_cast<std::size_t>(local));
  for (int k = 0; k < local; ++k) {
    const auto kk = static_cast<std::size_t>(k);
    const bool in = m.submitted[kk] && !m.gone[kk];
    mine[kk] = static_cast<std::uint8_t>((in ? 1 : 0) | (in && !m.late[kk] ? 2 : 0));
  }
  std::vector<std::uint8_t> state, alive;
  for (const auto& part : comm_.allgather_bytes(mine))
    state.insert(state.end(), part.begin(), part.end());
  std::vector<int> survivors;  // the responders: the clients whose shares the server gets
  for (int v = 0; v < n; ++v) {
    alive.push_back(state[static_cast<std::size_t>(v)] & 1);
    if (state[static_cast<std::size_t>(v)] & 2) survivors.push_back(v);
  }
  const int delivered = static_cast<int>(std::count(alive.begin(), alive.end(), 1));
  const int s = static_cast<int>(survivors.size());
  const int t = report_.threshold;
  report_.survivors = delivered;
  report_.responders = s;
  report_.aborted = s < t;

  double t_unmask = 0;
  sum_.assign(static_cast<std::size_t>(d_), 0);
  if (!report_.aborted) {
    // What the server sees: the delivered masked vectors, summed.
    std::vector<std::uint32_t> total = m.acc;
    allreduce_mod32(comm_, total);
    // Step 4: each survivor's shares, sent to the rank of the client they belong to.
    auto t0 = Clock::now();
    std::vector<std::vector<std::uint8_t>> send(static_cast<std::size_t>(ranks));
    for (int v : survivors) {
      if (v < m.lo || v >= m.hi) continue;
      const auto kk = static_cast<std::size_t>(v - m.lo);
      for (int r = 0; r < ranks; ++r) {
        auto& out = send[static_cast<std::size_t>(r)];
        for (int u = m.rank_lo[static_cast<std::size_t>(r)];
             u < m.rank_hi[static_cast<std::size_t>(r)]; ++u) {
          const auto& sh = alive[static_cast<std::size_t>(u)]
                               ? m.held_b[kk * nn + static_cast<std::size_t>(u)]
                               : m.held_sk[kk * nn + static_cast<std::size_t>(u)];
          const std::size_t at = out.size();
          out.resize(at + kShareBytes);
          std::memcpy(out.data() + at, sh.data(), kShareBytes);
          crypto_generichash_update(&m.digest[kk], out.data() + at, kShareBytes);
        }
      }
    }
    std::vector<std::int64_t> recv_bytes(static_cast<std::size_t>(ranks));
    for (int r = 0; r < ranks; ++r) {
      std::int64_t senders = 0;
      for (int v : survivors)
        if (v >= m.rank_lo[static_cast<std::size_t>(r)] &&
            v < m.rank_hi[static_cast<std::size_t>(r)])
          ++senders;
      recv_bytes[static_cast<std::size_t>(r)] =
          senders * local * static_cast<std::int64_t>(kShareBytes);
    }
    double t_send = seconds_since(t0);
    const std::vector<std::uint8_t> recv = m.exchange(comm_, send, recv_bytes);
    // The server's share of the work on this rank: the secrets of this rank's clients,
    // interpolated from the t survivors with the lowest ids, and the masks they regenerate.
    t0 = Clock::now();
    std::vector<std::uint64_t> xs(static_cast<std::size_t>(t));
    for (int i = 0; i < t; ++i)
      xs[static_cast<std::size_t>(i)] =
          static_cast<std::uint64_t>(
              m.sampled[static_cast<std::size_t>(survivors[static_cast<std::size_t>(i)])]) +
          1;
    const std::vector<std::uint64_t> lambda = shamir::lagrange_at_zero(xs);
    std::vector<std::uint32_t> removal(static_cast<std::size_t>(d_), 0);
    std::vector<shamir::Share> got(static_cast<std::size_t>(t));
    for (int k = 0; k < local; ++k) {
      const int u = m.lo + k;
      const int uid = m.sampled[static_cast<std::size_t>(u)];
      // Survivor i's response sits at (i-th survivor) x local + k shares in `recv`.
      for (int i = 0; i < t; ++i)
        std::memcpy(got[static_cast<std::size_t>(i)].data(),
                    recv.data() + (static_cast<std::size_t>(i) * static_cast<std::size_t>(local) +
                                   static_cast<std::size_t>(k)) *
                                      kShareBytes,
                    kShareBytes);
      const shamir::Secret secret = shamir::combine(lambda, got);
      const Key key(secret);
      if (alive[static_cast<std::size_t>(u)]) {
        add_prg(removal.data(), d_, key, m.round, -1, m.buf);
        continue;
      }
      Key pk;
      crypto_scalarmult_base(pk.data(), key.data());
      if (pk != m.c_pk[static_cast<std::size_t>(u)])
        throw std::logic_error(
            fmt::format("secure aggregation: client {}'s reconstructed key does "
                        "not match its public key",
                        uid));
      for (int v = 0; v < n; ++v) {  // every masked vector that arrived
        if (!alive[static_cast<std::size_t>(v)]) continue;
        const int vid = m.sampled[static_cast<std::size_t>(v)];
        const Key seed = mask_seed(uid, m.c_pk[static_cast<std::size_t>(u)], key, vid,
                                   m.c_pk[static_cast<std::size_t>(v)]);
        // v added +PRG(s_vu) when u > v, -PRG when u < v: take it back.
        add_prg(removal.data(), d_, seed, m.round, uid > vid ? -1 : +1, m.buf);
      }
    }
    allreduce_mod32(comm_, removal);
    for (std::int64_t j = 0; j < d_; ++j)
      sum_[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(
          total[static_cast<std::size_t>(j)] + removal[static_cast<std::size_t>(j)]);
    t_unmask = t_send + seconds_since(t0);
  }

  // Bytes (Note [Secure aggregation]), the same on every rank.
  report_.client_sent.assign(nn, 0);
  report_.client_received.assign(nn, 0);
  double sent = 0, received = 0;
  for (int v = 0; v < n; ++v) {
    const bool in = alive[static_cast<std::size_t>(v)] != 0;
    const bool answers = (state[static_cast<std::size_t>(v)] & 2) && !report_.aborted;
    // Every client that delivered hears the list of those that did; those that answer send a
    // share for each client of the round.
    std::int64_t out = kKeysSent + (n - 1) * kCipherOnWire + (in ? 4 * d_ : 0) +
                       (answers ? static_cast<std::int64_t>(n) * kResponseItem : 0);
    std::int64_t inb = (n - 1) * (kKeyRelayed + kCipherOnWire) + (in ? 4 * delivered : 0);
    report_.client_sent[static_cast<std::size_t>(v)] = out;
    report_.client_received[static_cast<std::size_t>(v)] = inb;
    sent += static_cast<double>(out);
    received += static_cast<double>(inb);
  }
  report_.mean_sent = sent / n;
  report_.mean_received = received / n;
  report_.server_received = sent;
  report_.server_sent = received;
  double times[4] = {m.t_keys, m.t_shares, m.t_masking, t_unmask};
  comm_.allreduce(comm::View{times, 4, comm::DType::kF64}, comm::ReduceOp::kSum);
  report_.time_keys = times[0] / n;
  report_.time_shares = times[1] / n;
  report_.time_masking = times[2] / n;
  report_.time_unmasking = times[3];

  // The transcript: every client's digest in position order, then the unmasked sum.
  std::vector<std::uint8_t> digests(static_cast<std::size_t>(local) * 32);
  for (int k = 0; k < local; ++k)
    crypto_generichash_final(&m.digest[static_cast<std::size_t>(k)], digests.data() + 32 * k, 32);
  crypto_generichash_state all;
  crypto_generichash_init(&all, nullptr, 0, 32);
  for (const auto& part : comm_.allgather_bytes(digests))
    crypto_generichash_update(&all, part.data(), part.size());
  crypto_generichash_update(&all, reinterpret_cast<const std::uint8_t*>(sum_.data()),
                            sum_.size() * 4);
  std::uint8_t h[32];
  crypto_generichash_final(&all, h, 32);
  std::uint64_t prefix = 0;
  for (int i = 0; i < 6; ++i) prefix |= static_cast<std::uint64_t>(h[i]) << (8 * i);
  report_.transcript = prefix;
  return !report_.aborted;
}

void SecureAggregation::decode(float* g, double divisor) const {
  const double scale = std::ldexp(1.0, -o_.fraction_bits) / divisor;
  for (std::size_t j = 0; j < sum_.size(); ++j) g[j] = static_cast<float>(sum_[j] * scale);
}

}  // namespace cohort::privacy
