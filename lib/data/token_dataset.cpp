#include "data/token_dataset.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"
#include "data/window_permutation.h"

namespace pptrain {

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

std::int64_t TokenDataset::num_windows(int T) const {
  check_seq_len(T);
  return (total_ - 1) / T;  // the last window's last target is still in the stream
}

void TokenDataset::fill_train_batch(std::uint64_t seed, std::int64_t step_start,
                                    std::int64_t sequences_per_step, std::int64_t first_sequence,
                                    int B, int T, int* inputs, int* targets) const {
  check_batch_shape(B, T);
  PPT_CHECK(step_start >= 0 && first_sequence >= 0 && first_sequence + B <= sequences_per_step,
            "{}: sequences [{}, {}) of a step outside its {} sequences", what_, first_sequence,
            first_sequence + B, sequences_per_step);
  const auto windows = static_cast<std::uint64_t>(num_windows(T));
  std::uint64_t epoch = ~std::uint64_t{0};
  WindowPermutation order(1, 0);
  for (int i = 0; i < B; ++i) {
    const auto g = static_cast<std::uint64_t>(step_start + first_sequence + i);
    if (g / windows != epoch) {  // a batch may straddle two epochs
      epoch = g / windows;
      order = WindowPermutation(windows, stream_key(seed, "train-epoch", epoch));
    }
    const auto start = static_cast<std::int64_t>(order(g % windows)) * T;
    const std::size_t row = static_cast<std::size_t>(i) * static_cast<std::size_t>(T);
    fill_sequence(start, T, inputs + row, targets + row);
  }
}

std::int64_t TokenDataset::num_eval_batches(int B, int T) const {
  check_batch_shape(B, T);
  const std::int64_t windows = num_windows(T);
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
