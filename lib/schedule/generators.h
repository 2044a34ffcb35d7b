// Schedule generators: pure functions (p ranks, v chunks per rank, m micro-batches) ->
// compute-only schedules (F and B; zb-h1, interleaved-zb and zbv split B into I and W).
// Every result passes validate() for all p, v, m >= 1 (test_schedule_properties.cpp).
#pragma once

#include <string_view>

#include "schedule/schedule.h"

namespace pptrain::schedule {

// GPipe: every rank runs all m forwards, then all m backwards (v = 1). Holds m micro-batches
// per stage; bubble (p-1)/(m+p-1) with B = 2F.
Schedule gpipe(int ranks, int micro_batches);

// PipeDream-Flush 1F1B (v = 1): rank r runs min(p-1-r, m) warm-up forwards, then alternates
// one forward and one backward, then the remaining backwards. Same bubble as GPipe, but
// stage i holds at most min(p-i, m) micro-batches.
Schedule one_f_one_b(int ranks, int micro_batches);

// Interleaved 1F1B (Megatron-LM virtual stages): rank r holds chunks c = 0..v-1, i.e. stages
// c*p + r. Works for every m >= 1; with m a multiple of p and chunk costs F/v, B/v the bubble
// is (p-1)/(v*m + p-1). With v = 1 it equals one_f_one_b. See generators.cpp for the order.
Schedule interleaved_1f1b(int ranks, int virtual_stages, int micro_batches);

// Zero-bubble ZB-H1: 1F1B with B split into I (input gradient) and W (weight gradient), rank
// r holding back r of its W to fill the cooldown (v = 1). With F = I = W = 1 and m >= p the
// bubble is (p-1)/(3m+p-1), a third of 1F1B's; every stage holds at most min(p, m)
// micro-batches (forward done, W not yet).
Schedule zero_bubble_h1(int ranks, int micro_batches);

// Interleaved 1F1B with zb-h1's split: each B becomes I and W, rank r holding back r of its
// W. With chunk costs F = I = W = 1/v and m a multiple of p the bubble is (p-1)/(3vm+p-1);
// v = 1 gives zb-h1.
Schedule interleaved_zero_bubble(int ranks, int virtual_stages, int micro_batches);

// ZBV (Qi et al., "Pipeline parallelism with controllable memory", 2024): v = 2 chunks per
// rank in the V placement (schedule.h: rank r holds stages r and 2p-1-r), each B split into
// I and W. Its order is one step played out with unit chunk costs (F = I = W = 1), each rank,
// when free, running the first of:
//   1. an I whose gradient has arrived (earliest micro-batch, then the later stage);
//   2. an F whose input has arrived (the same order), while its chunk holds fewer than
//      min(p, m) stashes (F run, W not yet): at most p micro-batches of the rank's layers,
//      1F1B's first-stage peak, counted per chunk as the executor pools stashes;
//   3. the W whose I ran first; or, in a second play-out, first the W of a chunk whose F
//      waits for a free stash. The shorter of the two steps is kept.
// With F = I = W = 1/2 and m a multiple of p the bubble is (p-1)/(6m+p-1), interleaved-zb's
// at v = 2 (the lower bound of a synchronous step), with every rank, not only the first,
// at 1F1B's first-stage memory. What V adds over the loop placement: the tied embedding's
// two copies share rank 0 (no all-reduce), the chunk hand-over on rank p-1 sends nothing,
// and each rank pair carries one stage boundary per direction.
Schedule zero_bubble_v(int ranks, int micro_batches);

// By name: "gpipe", "1f1b", "interleaved", "interleaved-zb", "zb-h1", "zbv". Throws for an
// unknown name or a combination the schedule cannot run (v > 1 with gpipe, 1f1b or zb-h1,
// v != 2 with zbv). A user CSV goes through load_schedule_csv.
Schedule generate(std::string_view name, int ranks, int virtual_stages, int micro_batches);

}  // namespace pptrain::schedule
