// All shards of a glob, read as one token stream (shards concatenated in name order; a shard
// boundary is an ordinary position), with the samplers that cut it into (inputs, targets).
//
// The training sampler is a pure function of (seed, step, replica, micro-batch, sequence),
// never of the number of stages or of the schedule (DESIGN.md 6a): the first stage (which
// needs the inputs) and the last (which needs the targets) draw the same positions on their
// own, so nothing but activations crosses the pipeline.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/token_shard.h"

namespace pptrain {

class TokenDataset {
 public:
  // Opens and checks every shard matching `pattern` (see TokenShard::open). `what` names the
  // config key the pattern came from, e.g. "configs/demo.yaml:12:10: data.train".
  static TokenDataset open(const std::string& pattern, int vocab_size, const std::string& what);

  const std::string& pattern() const { return pattern_; }
  const std::vector<TokenShard>& shards() const { return shards_; }
  std::int64_t num_tokens() const { return total_; }

  // Throws unless the stream holds at least T + 1 tokens (T inputs plus the last target).
  // The fill functions call it; the app may call it early to fail before allocating.
  void check_seq_len(int T) const;

  // Training reads the stream as W = num_windows(T) consecutive, non-overlapping windows of
  // T tokens (each with its T next-token targets). The run's sequence g = step_start +
  // first_sequence + i (row i of this (B, T) batch; step_start: the sequences read before
  // this step, first_sequence: this batch's place among the step's) is window
  // P_e(g mod W) of epoch e = g / W, where P_e is a permutation seeded by (seed, e)
  // (data/window_permutation.h): each epoch visits every window once, in its own order, and
  // the sequences of one step (every micro-batch of every replica: DESIGN 8's disjoint parts)
  // are distinct windows while sequences_per_step <= W. A pure function of its arguments, so
  // a resumed run reads what the uninterrupted one would have.
  std::int64_t num_windows(int T) const;
  void fill_train_batch(std::uint64_t seed, std::int64_t step_start, std::int64_t sequences_per_step,
                        std::int64_t first_sequence, int B, int T, int* inputs, int* targets) const;

  // Validation walks the stream in consecutive, non-overlapping windows of T: sequence j of
  // batch k starts at ((k * B + j) * T) mod U, where U = floor((num_tokens - 1) / T) * T is
  // the length covered by whole windows. ceil(windows / B) batches see every window once; the
  // last batch wraps to the start when B does not divide the number of windows.
  std::int64_t num_eval_batches(int B, int T) const;
  void fill_eval_batch(std::int64_t index, int B, int T, int* inputs, int* targets) const;

 private:
  // Copies n tokens starting at stream position `pos` (which may span shards) into out.
  void copy_tokens(std::int64_t pos, std::int64_t n, int* out) const;
  void fill_sequence(std::int64_t start, int T, int* inputs, int* targets) const;
  void check_batch_shape(int B, int T) const;

  std::string pattern_;
  std::string what_;
  std::vector<TokenShard> shards_;
  std::vector<std::int64_t> offsets_;  // offsets_[s] = first stream position of shard s
  std::int64_t total_ = 0;             // tokens in all shards
};

}  // namespace pptrain
