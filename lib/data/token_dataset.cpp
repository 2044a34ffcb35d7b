#include "data/token_dataset.h"

#include <algorithm>
#include <initializer_list>

#include "core/error.h"
#include "core/rng.h"

namespace pptrain {

namespace {

// One 64-bit stream index per (step, replica, micro-batch, sequence): each field is folded
// through splitmix64, so neighbouring tuples land on unrelated indices and two distinct
// tuples collide with probability ~2^-64.
std::uint64_t train_stream_index(std::int64_t step, int replica, int micro_batch, int sequence) {
  std::uint64_t h = 0;
  for (std::int64_t v : std::initializer_list<std::int64_t>{step, replica, micro_batch,
                                                            sequence}) {
    std::uint64_t state = h ^ static_cast<std::uint64_t>(v);
    h = splitmix64(state);
  }
  return h;
}

}  // namespace

TokenDataset TokenDataset::open(const std::string& pattern, int vocab_size,
                                const std::string& what) {
  TokenDataset ds;
  ds.pattern_ = pattern;
  ds.what_ = what;
  for (const auto& path : expand_shard_glob(pattern, what)) {
    ds.shards_.push_back(TokenShard::open(path, vocab_size));
    ds.offsets_.push_back(ds.total_);
    ds.total_ += ds.shards_.back().size();
  }
  return ds;
}

void TokenDataset::check_seq_len(int T) const {
  PPT_CHECK(T > 0, "{}: seq_len must be positive, got {}", what_, T);
  PPT_CHECK(total_ >= static_cast<std::int64_t>(T) + 1,
            "{}: '{}' holds {} tokens in {} shard(s), but seq_len {} needs at least {} "
            "(T inputs plus one target)",
            what_, pattern_, total_, shards_.size(), T, static_cast<std::int64_t>(T) + 1);
}

void TokenDataset::check_batch_shape(int B, int T) const {
  PPT_CHECK(B > 0, "{}: batch size must be positive, got {}", what_, B);
  check_seq_len(T);
}

void TokenDataset::copy_tokens(std::int64_t pos, std::int64_t n, int* out) const {
  // The shard holding `pos`: the last one whose first position is <= pos. Empty shards share
  // their offset with the next one; upper_bound skips past them.
  auto it = std::upper_bound(offsets_.begin(), offsets_.end(), pos);
  auto s = static_cast<std::size_t>(it - offsets_.begin()) - 1;
  while (n > 0) {
    const auto tokens = shards_[s].tokens();
    const std::int64_t begin = pos - offsets_[s];
    const std::int64_t count = std::min<std::int64_t>(n, shards_[s].size() - begin);
    std::copy_n(tokens.begin() + begin, count, out);
    out += count;
    pos += count;
    n -= count;
    ++s;
  }
}

void TokenDataset::fill_sequence(std::int64_t start, int T, int* inputs, int* targets) const {
  copy_tokens(start, T, inputs);
  copy_tokens(start + 1, T, targets);
}

void TokenDataset::fill_train_batch(std::uint64_t seed, std::int64_t step, int replica,
                                    int micro_batch, int B, int T, int* inputs,
                                    int* targets) const {
  check_batch_shape(B, T);
  PPT_CHECK(step >= 0 && replica >= 0 && micro_batch >= 0,
            "{}: step, replica and micro-batch must be >= 0, got {}, {}, {}", what_, step,
            replica, micro_batch);
  // Starts in [0, total - T - 1]: the last target, at start + T, is still in the stream.
  const auto num_starts = static_cast<std::uint64_t>(total_ - T);
  for (int i = 0; i < B; ++i) {
    Rng rng(stream_key(seed, "train-batch", train_stream_index(step, replica, micro_batch, i)));
    const auto start = static_cast<std::int64_t>(rng.below(num_starts));
    const std::size_t row = static_cast<std::size_t>(i) * static_cast<std::size_t>(T);
    fill_sequence(start, T, inputs + row, targets + row);
  }
}

std::int64_t TokenDataset::num_eval_batches(int B, int T) const {
  check_batch_shape(B, T);
  const std::int64_t windows = (total_ - 1) / T;
  return (windows + B - 1) / B;
}

void TokenDataset::fill_eval_batch(std::int64_t index, int B, int T, int* inputs,
                                   int* targets) const {
  const std::int64_t batches = num_eval_batches(B, T);
  PPT_CHECK(index >= 0 && index < batches, "{}: eval batch {} is out of range [0, {})", what_,
            index, batches);
  const std::int64_t usable = (total_ - 1) / T * T;
  for (int j = 0; j < B; ++j) {
    const std::int64_t start = ((index * B + j) * T) % usable;
    const std::size_t row = static_cast<std::size_t>(j) * static_cast<std::size_t>(T);
    fill_sequence(start, T, inputs + row, targets + row);
  }
}

}  // namespace pptrain
