#include "schedule/generators.h"

#include <algorithm>
#include <deque>
#include <string>
#include <vector>

#include "core/error.h"

namespace pptrain::schedule {
namespace {

Action forward(int stage, int mb) { return {stage, ActionKind::Forward, mb}; }
Action backward(int stage, int mb) { return {stage, ActionKind::Backward, mb}; }
Action backward_input(int stage, int mb) { return {stage, ActionKind::BackwardInput, mb}; }
Action backward_weight(int stage, int mb) { return {stage, ActionKind::BackwardWeight, mb}; }

Schedule empty_schedule(std::string name, int ranks, int virtual_stages, int micro_batches) {
  check_shape(ranks, virtual_stages, micro_batches);
  Schedule s;
  s.name = std::move(name);
  s.ranks = ranks;
  s.virtual_stages = virtual_stages;
  s.micro_batches = micro_batches;
  s.actions.resize(ranks);
  return s;
}

// One rank's list from its forward and backward orders (both of length n) and its number of
// warm-up forwards: warm-up forwards, then (F, B) pairs, then the remaining backwards. This
// is the shape shared by 1F1B and interleaved 1F1B; GPipe is the case warmup = n.
std::vector<Action> one_f_one_b_list(const std::vector<Action>& forwards,
                                     const std::vector<Action>& backwards, int warmup) {
  const int n = static_cast<int>(forwards.size());
  warmup = std::min(warmup, n);
  std::vector<Action> list;
  list.reserve(2 * n);
  for (int k = 0; k < warmup; ++k) list.push_back(forwards[k]);
  for (int k = 0; k + warmup < n; ++k) {
    list.push_back(forwards[k + warmup]);
    list.push_back(backwards[k]);
  }
  for (int k = n - warmup; k < n; ++k) list.push_back(backwards[k]);
  return list;
}

// Each B of `list` becomes I, and its W follows once `hold_back` later I have run (the rest
// at the end): W keeps the order of the B it came from.
std::vector<Action> split_backwards(const std::vector<Action>& list, int hold_back) {
  std::vector<Action> out;
  std::deque<Action> waiting;  // I done, W not yet
  for (const Action& a : list) {
    if (a.kind != ActionKind::Backward) {
      out.push_back(a);
      continue;
    }
    out.push_back(backward_input(a.stage, a.micro_batch));
    waiting.push_back(backward_weight(a.stage, a.micro_batch));
    if (static_cast<int>(waiting.size()) > hold_back) {
      out.push_back(waiting.front());
      waiting.pop_front();
    }
  }
  out.insert(out.end(), waiting.begin(), waiting.end());
  return out;
}

}  // namespace

Schedule gpipe(int ranks, int micro_batches) {
  Schedule s = empty_schedule("gpipe", ranks, 1, micro_batches);
  for (int r = 0; r < ranks; ++r) {
    for (int mb = 0; mb < micro_batches; ++mb) s.actions[r].push_back(forward(r, mb));
    for (int mb = 0; mb < micro_batches; ++mb) s.actions[r].push_back(backward(r, mb));
  }
  return s;
}

Schedule one_f_one_b(int ranks, int micro_batches) {
  Schedule s = empty_schedule("1f1b", ranks, 1, micro_batches);
  for (int r = 0; r < ranks; ++r) {
    std::vector<Action> forwards, backwards;
    for (int mb = 0; mb < micro_batches; ++mb) {
      forwards.push_back(forward(r, mb));
      backwards.push_back(backward(r, mb));
    }
    // Rank r's first backward (micro-batch 0) can start once micro-batch 0 has gone through
    // the p-1-r later ranks and its gradient came back; those p-1-r forwards fill the wait.
    s.actions[r] = one_f_one_b_list(forwards, backwards, ranks - 1 - r);
  }
  return s;
}

// 1F1B with each B split into I (the input gradient, which the previous stage waits for) and
// W (the weight gradient, which nobody waits for). Rank r runs W(k - r) right after I(k):
// the later a rank is in the pipeline, the more of its W it keeps back, and at the end those
// kept-back W fill the time in which 1F1B's cooldown waits for gradients to come back.
// With unit costs F = I = W = 1 and m >= p, every rank is idle for exactly p-1 units, 1F1B's
// with B = 2 is 3(p-1). Stage r then holds at most p micro-batches (forward done, W not
// yet): the first stage's 1F1B peak, now on every stage (ZB-H1 of Qi et al., 2023).
Schedule zero_bubble_h1(int ranks, int micro_batches) {
  Schedule s = one_f_one_b(ranks, micro_batches);
  s.name = "zb-h1";
  for (int r = 0; r < ranks; ++r) s.actions[r] = split_backwards(s.actions[r], r);
  return s;
}

// Order of the work on every rank (Megatron-LM's interleaved schedule, with two changes
// explained below). Micro-batches go round the ring of ranks in groups of p: a group's
// micro-batches run chunk 0 on every rank, come back to rank 0 for chunk 1, and so on:
//   forwards:  for each group G: for c = 0..v-1:    for mb in G: F(c*p + r, mb)
//   backwards: for each group G: for c = v-1..0:    for mb in G: B(c*p + r, mb)
// With a full group of p, micro-batch mb's chunk c+1 starts on rank 0 just as rank p-1
// finishes its chunk c, so the ring never waits.
//
// Change 1, m not a multiple of p: the last group holds the m % p leftover micro-batches
// (with m < p the only group holds m). A small group makes rank 0 wait at each chunk change
// for its micro-batches to come round the ring (p - g forward slots for a group of g), so
// the bubble is above the ideal (p-1)/(v*m + p-1) but stays at or below 1F1B's.
//
// Change 2, warm-up forwards: rank r runs (v-1)*g0 + (p-1-r), where g0 = min(p, m) is the
// first group's size. Its first backward is B(chunk v-1, mb 0), which needs that chunk's
// forward (number (v-1)*g0 in the order above) and the gradient from rank r+1; the extra
// p-1-r forwards cover the gradient's way back, as in 1F1B (so v = 1 gives 1F1B exactly).
// Megatron uses 2*(p-1-r) + (v-1)*p: its steady state pairs a blocking forward receive with
// each backward send and needs the slack. Here sends never block and a receive waits only
// for its own send (lowering.h), so the extra p-1-r forwards would only hold more
// activations; and with a small last group Megatron's count deadlocks: for p=4, v=3, m=5,
// rank 0's warm-up takes in 8F4, which needs 7F4 from rank 3, which rank 3 runs only after
// 7B0, which needs the gradient of 8B0 from rank 0, which comes after 8F4.
Schedule interleaved_1f1b(int ranks, int virtual_stages, int micro_batches) {
  Schedule s = empty_schedule("interleaved", ranks, virtual_stages, micro_batches);
  const int p = ranks, v = virtual_stages, m = micro_batches;
  for (int r = 0; r < p; ++r) {
    std::vector<Action> forwards, backwards;
    for (int first = 0; first < m; first += p) {
      const int end = std::min(first + p, m);
      for (int c = 0; c < v; ++c) {
        for (int mb = first; mb < end; ++mb) forwards.push_back(forward(c * p + r, mb));
      }
      for (int c = v - 1; c >= 0; --c) {
        for (int mb = first; mb < end; ++mb) backwards.push_back(backward(c * p + r, mb));
      }
    }
    const int first_group = std::min(p, m);
    s.actions[r] = one_f_one_b_list(forwards, backwards, (v - 1) * first_group + (p - 1 - r));
  }
  return s;
}

// zb-h1's rule on the interleaved order: rank r holds back r of its W. Unit tests: with chunk
// costs F = I = W = 1/v and m a multiple of p the bubble is (p-1)/(3vm+p-1), the lower bound
// of a synchronous step (every rank idles (p-1)/v), and no rank holds more micro-batch chunks
// than the interleaved schedule's first rank.
Schedule interleaved_zero_bubble(int ranks, int virtual_stages, int micro_batches) {
  Schedule s = interleaved_1f1b(ranks, virtual_stages, micro_batches);
  s.name = "interleaved-zb";
  for (int r = 0; r < ranks; ++r) s.actions[r] = split_backwards(s.actions[r], r);
  return s;
}

Schedule generate(std::string_view name, int ranks, int virtual_stages, int micro_batches) {
  check_shape(ranks, virtual_stages, micro_batches);
  if (name == "gpipe" || name == "1f1b") {
    PPT_CHECK(virtual_stages == 1,
              "schedule {} runs one stage per rank, but virtual_stages is {}; use schedule "
              "interleaved for virtual stages",
              name, virtual_stages);
    return name == "gpipe" ? gpipe(ranks, micro_batches) : one_f_one_b(ranks, micro_batches);
  }
  if (name == "interleaved") return interleaved_1f1b(ranks, virtual_stages, micro_batches);
  if (name == "interleaved-zb") return interleaved_zero_bubble(ranks, virtual_stages, micro_batches);
  if (name == "zb-h1") {
    PPT_CHECK(virtual_stages == 1,
              "schedule zb-h1 runs one stage per rank, but virtual_stages is {}", virtual_stages);
    return zero_bubble_h1(ranks, micro_batches);
  }
  if (name == "zbv") {
    PPT_CHECK(virtual_stages == 2,
              "schedule zbv runs two stages per rank (V placement), but virtual_stages is {}",
              virtual_stages);
    return zero_bubble_v(ranks, micro_batches);
  }
  PPT_THROW(
      "unknown schedule '{}': expected gpipe, 1f1b, interleaved, interleaved-zb, zb-h1 or zbv "
      "(or csv:<path> for a schedule file)",
      name);
}

}  // namespace pptrain::schedule
